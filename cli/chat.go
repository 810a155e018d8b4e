package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/chzyer/readline"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/sample"
)

func init() { register(newChatCmd) }

func newChatCmd(e *env) *cobra.Command {
	var g genFlags
	cmd := &cobra.Command{
		Use:   "chat MODEL",
		Short: "Talk with a model, keeping the conversation's history",
		Long: "Chat reads your messages and answers each with the whole conversation in context.\n" +
			"On a terminal it offers line editing and history; type /clear to forget the conversation\n" +
			"and /bye (or Ctrl-D) to leave. Piped, each line of input is one message (end a line with \\\n" +
			"to continue the message on the next) and chat exits at the end of input.",
		Example: `  apr chat ./qwen2.5-coder-1.5b --system "You are a terse Go reviewer."
  echo "What is 2+2?" | apr chat model.gguf`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := e.load(args[0], g.loadFlags())
			if err != nil {
				return err
			}
			defer l.Close()
			lines, closeLines, err := e.chatInput()
			if err != nil {
				return err
			}
			defer closeLines()
			c := &conversation{e: e, g: &g, l: l, seq: g.sequence(l)}
			c.reset()
			sampler := g.sampler(l)
			for {
				msg, err := lines()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				switch strings.TrimSpace(msg) {
				case "":
					continue
				case "/bye", "/exit", "/quit":
					return nil
				case "/clear":
					c.reset()
					continue
				}
				ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT)
				err = c.turn(ctx, msg, sampler)
				cancel()
				if errors.Is(err, context.Canceled) {
					fmt.Fprintln(e.stdout)
					continue
				}
				if err != nil {
					return err
				}
			}
		},
	}
	g.register(cmd)
	return cmd
}

// conversation keeps the messages and what of them the KV cache holds, so
// each turn only feeds the tokens that are new.
type conversation struct {
	e      *env
	g      *genFlags
	l      *loaded
	seq    *engine.Sequence
	msgs   []chat.Message
	cached []int
}

func (c *conversation) reset() {
	c.msgs = c.msgs[:0]
	if c.g.system != "" {
		c.msgs = append(c.msgs, chat.Message{Role: "system", Content: c.g.system})
	}
	c.cached = nil
	c.seq.Truncate(0)
}

func (c *conversation) turn(ctx context.Context, user string, s *sample.Sampler) error {
	msgs := append(c.msgs, chat.Message{Role: "user", Content: user})
	text, err := c.l.model.Template.Render(chat.Request{Messages: msgs, AddGenerationPrompt: true})
	if err != nil {
		return fmt.Errorf("chat template: %w", err)
	}
	ids := c.l.model.Tokenizer.Encode(text)
	if len(ids) >= c.seq.Context() {
		return fmt.Errorf("the conversation is %d tokens, the context holds %d: /clear it or raise --ctx-size", len(ids), c.seq.Context())
	}
	// Reuse the cached prefix; always feed at least one token.
	k := 0
	for k < len(c.cached) && k < len(ids)-1 && c.cached[k] == ids[k] {
		k++
	}
	c.seq.Truncate(k)
	st, answer, err := c.e.generate(ctx, c.g, c.l, c.seq, ids[k:], s)
	fmt.Fprintln(c.e.stdout)
	if err != nil {
		c.cached = nil
		c.seq.Truncate(0)
		return err
	}
	c.msgs = append(msgs, chat.Message{Role: "assistant", Content: answer})
	c.cached = append(ids, st.Output...)
	if len(c.cached) > c.seq.Pos() {
		c.cached = c.cached[:c.seq.Pos()]
	}
	return nil
}

// chatInput returns a function reading one message at a time: readline on a
// terminal (prompt on stderr), lines with \ continuation otherwise.
func (e *env) chatInput() (func() (string, error), func(), error) {
	if f, ok := e.stdin.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		rl, err := readline.NewEx(&readline.Config{Prompt: ">>> ", Stdin: f, Stdout: e.stderr, Stderr: e.stderr})
		if err != nil {
			return nil, nil, fmt.Errorf("terminal: %w", err)
		}
		read := func() (string, error) {
			line, err := rl.Readline()
			if errors.Is(err, readline.ErrInterrupt) {
				return "", nil
			}
			return line, err
		}
		return read, func() { rl.Close() }, nil
	}
	sc := bufio.NewScanner(e.stdin)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	read := func() (string, error) {
		var parts []string
		for sc.Scan() {
			line := sc.Text()
			if strings.HasSuffix(line, "\\") {
				parts = append(parts, strings.TrimSuffix(line, "\\"))
				continue
			}
			parts = append(parts, line)
			return strings.Join(parts, "\n"), nil
		}
		if err := sc.Err(); err != nil {
			return "", err
		}
		if len(parts) > 0 {
			return strings.Join(parts, "\n"), nil
		}
		return "", io.EOF
	}
	return read, func() {}, nil
}
