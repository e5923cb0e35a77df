// The chat template, fixed and shared by every stage:
//   <|user|> PROMPT <|assistant|> RESPONSE <|endoftext|>  (repeated per turn)
// Special tokens are inserted as ids, never parsed from text. Only response
// tokens and each response's closing end-of-text carry loss.
#ifndef RLHF_CHAT_H
#define RLHF_CHAT_H

#include "jsonl.h"
#include "tokenizer.h"

// <|user|> prompt <|assistant|>: the prefix a model answers. Writes at most
// max ids; returns the full length, or -1 with a reason (encoding failed).
long chat_encode_prompt(const Tokenizer *tok, const char *prompt, int *ids, long max);

// A prompt in its conversation: the turns before it (alternating user,
// assistant, starting with user, n_history even; NULL and 0 for none) and
// the user turn to answer. Points into data owned elsewhere.
typedef struct {
    const Turn *history;
    int n_history;
    const char *text;
} ChatPrompt;

static inline ChatPrompt chat_prompt(const char *text) {
    return (ChatPrompt){NULL, 0, text};
}

// The history in the template (each exchange <|user|> u <|assistant|> a
// <|endoftext|>), then <|user|> text <|assistant|>: what a model answers
// in a conversation. Same contract as chat_encode_prompt.
long chat_encode_context(const Tokenizer *tok, const ChatPrompt *p, int *ids, long max);

// The context, then the response and (unless no_eot) its end-of-text: a
// conversation's last exchange as a reward model or DPO scores it. Returns
// the full length or -1.
long chat_encode_context_pair(const Tokenizer *tok, const ChatPrompt *p, const char *response,
                              int no_eot, int *ids, long max);

// Drops the oldest exchanges of p's history, whole (never a part of a
// turn), while the context (chat_encode_context) plus `extra` tokens is
// longer than limit, or until no history is left. Returns the number of
// exchanges dropped, or -1 with a reason when a turn does not encode.
int chat_prompt_fit(const Tokenizer *tok, ChatPrompt *p, long extra, long limit);

// A whole conversation. ids[i] is the token at position i, and loss[i] = 1
// when token i is predicted with loss (response tokens and their closing
// end-of-text), else 0. Writes at most max of each; returns the full length
// or -1 with a reason.
long chat_encode_example(const Tokenizer *tok, const SftExample *ex, int *ids,
                         unsigned char *loss, long max);

// prompt + response for scoring: the template of one turn, ending with the
// end-of-text token unless no_eot. Returns the full length or -1.
long chat_encode_pair(const Tokenizer *tok, const char *prompt, const char *response,
                      int no_eot, int *ids, long max);

#endif
