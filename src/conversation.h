// A conversation with a model, as `rlhf chat` holds it: the exchanges so far
// in the chat template, the oldest dropped whole when the context no longer
// leaves room for a reply, and the tokens a TokenStream's KV cache holds, so
// that each turn feeds only what changed since the last. No I/O and no text
// here: prompts arrive encoded (chat_encode_prompt, chat.h).
#ifndef RLHF_CONVERSATION_H
#define RLHF_CONVERSATION_H

#include "gpt.h"
#include "sampling.h"

// One exchange in template form:
// <|user|> prompt <|assistant|> reply <|endoftext|>
typedef struct {
    int *ids;  // owned
    int n;
} ChatExchange;

typedef struct {
    int T;                // the context in tokens (the model's block_size)
    ChatExchange *ex;     // the exchanges kept, oldest first; owned
    int n_ex, cap_ex;
    int ex_tokens;        // sum of ex[i].n
    int *seq;             // (T) this turn's input: the exchanges kept, then the prompt
    int n_seq, n_prompt;  // its length; the prompt is its last n_prompt tokens
    int *cached;          // (T) the tokens whose keys and values the cache holds,
    int n_cached;         //     at positions 0..n_cached-1
    int reused;           // positions of seq the last turn did not feed again
    int *turn;            // (T+2) scratch: this turn's prompt, reply and end-of-text
} Conversation;

// Why a reply ended.
typedef enum {
    CHAT_REPLY_EOT,      // the model closed it with end-of-text
    CHAT_REPLY_MAX_NEW,  // max_new tokens were drawn
    CHAT_REPLY_CONTEXT,  // the context is full
} ChatReplyEnd;

// An empty conversation in a context of T tokens, with nothing cached.
// init/free pair.
void conversation_init(Conversation *c, int T);
void conversation_free(Conversation *c);

// Forgets every exchange. What the cache holds stays valid: a later turn
// still reuses the positions its input shares with it.
void conversation_clear(Conversation *c);

// Appends an exchange of n tokens (copied).
void conversation_add(Conversation *c, const int *ids, int n);

// Drops the oldest exchange (there must be one).
void conversation_drop_oldest(Conversation *c);

// Tokens kept free for the reply to a prompt of pl tokens (pl < T):
// min(max_new, T/4), but no more than T - pl leaves, and at least 1.
int chat_reply_room(int T, int pl, int max_new);

// Starts a turn with a prompt of pl tokens (1 <= pl < T, copied): drops the
// oldest exchanges, whole, until the exchanges, the prompt and
// chat_reply_room fit in T; then seq = the exchanges kept + the prompt.
// Returns how many exchanges were dropped.
int conversation_begin_turn(Conversation *c, const int *prompt, int pl, int max_new);

// How many leading tokens of seq (n >= 1 tokens) a cache holding cached
// (n_cached tokens) can keep: their longest common prefix, but at most
// n - 1, since the last token must be fed for its logits.
int chat_cache_reuse(const int *cached, int n_cached, const int *seq, int n);

// How many reply tokens this turn allows: max_new, or fewer when the
// context ends first (the last reply token is never fed, so positions up to
// T-1 allow T - n_seq + 1 tokens).
int conversation_reply_budget(const Conversation *c, int max_new);

// Answers the turn begun by conversation_begin_turn, with m and ts (whose
// one-row KV cache of at least T positions only this conversation uses):
// feeds seq from the first position the cache does not hold, then draws
// tokens from ts, feeding each back, until end-of-text, max_new tokens or
// the end of the context. emit(token, ctx) is called for each token as it
// is drawn, the end-of-text excepted (emit may be NULL). The exchange is
// recorded, closed with eot when the reply was cut. Returns the number of
// reply tokens drawn (the end-of-text included); *end says why it stopped.
int conversation_reply(Conversation *c, GPT *m, TokenStream *ts, int max_new, int eot,
                       void (*emit)(int token, void *ctx), void *ctx, ChatReplyEnd *end);

#endif
