package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// File is a parsed trace.
type File struct {
	Header Header
	Bricks []BrickLine
	Passes []PassLine
}

// maxLine bounds one trace line (a brick with three outputs is ~400 bytes).
const maxLine = 1 << 20

// Parse reads a trace written by Writer, checking every line: the header
// first, then brick and pass lines with known fields, passes in order.
func Parse(r io.Reader) (*File, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	f := &File{}
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var kind struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &kind); err != nil {
			return nil, fmt.Errorf("trace line %d: %w", n, err)
		}
		if n == 1 && kind.Type != "header" {
			return nil, fmt.Errorf("trace line 1: type %q, want the header", kind.Type)
		}
		if err := f.add(kind.Type, line); err != nil {
			return nil, fmt.Errorf("trace line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if n == 0 {
		return nil, errors.New("trace: empty")
	}
	return f, nil
}

func (f *File) add(kind string, line []byte) error {
	dec := func(v any) error {
		d := json.NewDecoder(bytes.NewReader(line))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	switch kind {
	case "header":
		if f.Header.Type != "" {
			return errors.New("a second header")
		}
		if err := dec(&f.Header); err != nil {
			return err
		}
		if f.Header.Version != Version {
			return fmt.Errorf("schema version %d, want %d", f.Header.Version, Version)
		}
	case "brick":
		var b BrickLine
		if err := dec(&b); err != nil {
			return err
		}
		if b.Brick == "" || b.Rows < 0 || b.Layer < -1 || b.Pass < 0 || b.ElapsedUS < 0 {
			return fmt.Errorf("brick line with brick %q, rows %d, layer %d, pass %d, elapsed %g", b.Brick, b.Rows, b.Layer, b.Pass, b.ElapsedUS)
		}
		for _, s := range b.Outputs {
			if s.N < 0 || s.NaN < 0 || s.Inf < 0 || s.NaN+s.Inf > s.N {
				return fmt.Errorf("%s: inconsistent statistics %+v", b.Brick, s)
			}
		}
		f.Bricks = append(f.Bricks, b)
	case "pass":
		var p PassLine
		if err := dec(&p); err != nil {
			return err
		}
		if want := len(f.Passes); p.Pass < want {
			return fmt.Errorf("pass %d after pass %d", p.Pass, want-1)
		}
		f.Passes = append(f.Passes, p)
	default:
		return fmt.Errorf("unknown line type %q", kind)
	}
	return nil
}
