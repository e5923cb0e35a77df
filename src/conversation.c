// A chat conversation: exchanges trimmed oldest first to the context, and
// the KV cache's record of what it holds; see conversation.h.
#include "conversation.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

void conversation_init(Conversation *c, int T) {
    ASSERT(T >= 2);
    memset(c, 0, sizeof *c);
    c->T = T;
    c->seq = mallocCheck((size_t)T * sizeof(int));
    c->cached = mallocCheck((size_t)T * sizeof(int));
    c->turn = mallocCheck(((size_t)T + 2) * sizeof(int));
}

void conversation_free(Conversation *c) {
    conversation_clear(c);
    free(c->ex);
    free(c->seq);
    free(c->cached);
    free(c->turn);
    memset(c, 0, sizeof *c);
}

void conversation_clear(Conversation *c) {
    while (c->n_ex) conversation_drop_oldest(c);
}

void conversation_add(Conversation *c, const int *ids, int n) {
    if (c->n_ex == c->cap_ex) {
        c->cap_ex = c->cap_ex ? 2 * c->cap_ex : 8;
        c->ex = reallocCheck(c->ex, (size_t)c->cap_ex * sizeof *c->ex);
    }
    ChatExchange *e = &c->ex[c->n_ex++];
    e->ids = mallocCheck((size_t)n * sizeof(int));
    memcpy(e->ids, ids, (size_t)n * sizeof(int));
    e->n = n;
    c->ex_tokens += n;
}

void conversation_drop_oldest(Conversation *c) {
    ASSERT(c->n_ex > 0);
    c->ex_tokens -= c->ex[0].n;
    free(c->ex[0].ids);
    memmove(c->ex, c->ex + 1, (size_t)(c->n_ex - 1) * sizeof *c->ex);
    c->n_ex--;
}

int chat_reply_room(int T, int pl, int max_new) {
    int room = max_new < T / 4 ? max_new : T / 4;
    if (room > T - pl) room = T - pl;
    return room < 1 ? 1 : room;
}

int conversation_begin_turn(Conversation *c, const int *prompt, int pl, int max_new) {
    ASSERT(pl >= 1 && pl < c->T);
    const int room = chat_reply_room(c->T, pl, max_new);
    int dropped = 0;
    while (c->n_ex > 0 && c->ex_tokens + pl + room > c->T) {
        conversation_drop_oldest(c);
        dropped++;
    }
    // room >= 1 and pl < T: with no exchanges left everything fits
    int n = 0;
    for (int i = 0; i < c->n_ex; i++) {
        memcpy(c->seq + n, c->ex[i].ids, (size_t)c->ex[i].n * sizeof(int));
        n += c->ex[i].n;
    }
    memcpy(c->seq + n, prompt, (size_t)pl * sizeof(int));
    c->n_seq = n + pl;
    c->n_prompt = pl;
    return dropped;
}

int chat_cache_reuse(const int *cached, int n_cached, const int *seq, int n) {
    ASSERT(n >= 1);
    int p = 0;
    while (p < n_cached && p < n && cached[p] == seq[p]) p++;
    return p < n ? p : n - 1;
}

int conversation_reply_budget(const Conversation *c, int max_new) {
    int fits = c->T - c->n_seq + 1;
    return max_new < fits ? max_new : fits;
}

int conversation_reply(Conversation *c, GPT *m, TokenStream *ts, int max_new, int eot,
                       void (*emit)(int token, void *ctx), void *ctx, ChatReplyEnd *end) {
    ASSERT(c->n_seq >= 1 && ts->kv.B == 1 && ts->kv.T >= c->T);
    // feed what the cache does not hold yet (at least the last token, whose
    // logits give the first reply token)
    int p = chat_cache_reuse(c->cached, c->n_cached, c->seq, c->n_seq);
    c->reused = p;
    for (; p < c->n_seq; p++) {
        gpt_decode_step(m, &ts->kv, &c->seq[p], p);
        c->cached[p] = c->seq[p];
    }
    c->n_cached = c->n_seq;

    // the exchange is built in c->turn: the prompt, then the reply
    const int pl = c->n_prompt;
    memcpy(c->turn, c->seq + c->n_seq - pl, (size_t)pl * sizeof(int));
    int *reply = c->turn + pl;
    const int budget = conversation_reply_budget(c, max_new);
    int g = 0, ended = 0;
    for (; g < budget; g++) {
        int next = token_stream_sample(ts);
        reply[g] = next;
        if (next == eot) {
            ended = 1;
            g++;
            break;
        }
        if (emit) emit(next, ctx);
        if (g + 1 == budget) {  // the last token is never fed
            g++;
            break;
        }
        gpt_decode_step(m, &ts->kv, &next, c->n_cached);
        c->cached[c->n_cached++] = next;
    }
    *end = ended ? CHAT_REPLY_EOT : budget == max_new ? CHAT_REPLY_MAX_NEW : CHAT_REPLY_CONTEXT;
    // the exchange as the template has it: the reply always closes
    int tn = pl + g;
    if (!ended) c->turn[tn++] = eot;
    conversation_add(c, c->turn, tn);
    return g;
}
