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
