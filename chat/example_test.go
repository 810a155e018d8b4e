package chat_test

import (
	"fmt"

	"github.com/apr-llm/apr/chat"
)

func ExampleTemplate_Render() {
	prompt, err := chat.ChatML().Render(chat.Request{
		Messages:            []chat.Message{{Role: "user", Content: "What is 2+2?"}},
		System:              "Answer with just the number.",
		AddGenerationPrompt: true,
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", prompt)
	// Output: "<|im_start|>system\nAnswer with just the number.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
}

func ExampleParseToolCalls() {
	calls, content, err := chat.ParseToolCalls("Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")
	if err != nil {
		panic(err)
	}
	fmt.Println(content)
	fmt.Println(calls[0].Function.Name, calls[0].Function.Arguments)
	// Output:
	// Checking.
	// get_weather {"city": "Paris"}
}
