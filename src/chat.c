// The chat template; see chat.h.
#include "chat.h"

#include <string.h>

#include "common.h"

// Appends one special id; counts past max without writing.
static void put_id(int *ids, unsigned char *loss, long max, long *n, int id, int has_loss) {
    if (*n < max) {
        ids[*n] = id;
        if (loss) loss[*n] = (unsigned char)has_loss;
    }
    (*n)++;
}

// Appends the encoding of text; returns -1 on an encoding error.
static int put_text(const Tokenizer *tok, const char *text, int *ids, unsigned char *loss,
                    long max, long *n, int has_loss) {
    long room = *n < max ? max - *n : 0;
    long k = tokenizer_encode(tok, (const uint8_t *)text, strlen(text), ids + (*n < max ? *n : max),
                              room);
    if (k < 0) return -1;
    if (loss)
        for (long i = *n; i < *n + k && i < max; i++) loss[i] = (unsigned char)has_loss;
    *n += k;
    return 0;
}

long chat_encode_prompt(const Tokenizer *tok, const char *prompt, int *ids, long max) {
    long n = 0;
    put_id(ids, NULL, max, &n, tok->user, 0);
    if (put_text(tok, prompt, ids, NULL, max, &n, 0) != 0) return -1;
    put_id(ids, NULL, max, &n, tok->assistant, 0);
    return n;
}

long chat_encode_example(const Tokenizer *tok, const SftExample *ex, int *ids,
                         unsigned char *loss, long max) {
    long n = 0;
    for (int t = 0; t < ex->n_turns; t++) {
        const Turn *turn = &ex->turns[t];
        if (turn->role == TURN_USER) {
            put_id(ids, loss, max, &n, tok->user, 0);
            if (put_text(tok, turn->text, ids, loss, max, &n, 0) != 0) return -1;
            put_id(ids, loss, max, &n, tok->assistant, 0);
        } else {
            if (put_text(tok, turn->text, ids, loss, max, &n, 1) != 0) return -1;
            put_id(ids, loss, max, &n, tok->eot, 1);
        }
    }
    return n;
}

long chat_encode_pair(const Tokenizer *tok, const char *prompt, const char *response,
                      int no_eot, int *ids, long max) {
    long n = chat_encode_prompt(tok, prompt, ids, max);
    if (n < 0) return -1;
    if (put_text(tok, response, ids, NULL, max, &n, 0) != 0) return -1;
    if (!no_eot) put_id(ids, NULL, max, &n, tok->eot, 0);
    return n;
}

long chat_encode_context(const Tokenizer *tok, const ChatPrompt *p, int *ids, long max) {
    ASSERT(p->n_history % 2 == 0);
    long n = 0;
    for (int t = 0; t < p->n_history; t++) {
        const Turn *turn = &p->history[t];
        if (turn->role == TURN_USER) {
            put_id(ids, NULL, max, &n, tok->user, 0);
            if (put_text(tok, turn->text, ids, NULL, max, &n, 0) != 0) return -1;
            put_id(ids, NULL, max, &n, tok->assistant, 0);
        } else {
            if (put_text(tok, turn->text, ids, NULL, max, &n, 0) != 0) return -1;
            put_id(ids, NULL, max, &n, tok->eot, 0);
        }
    }
    put_id(ids, NULL, max, &n, tok->user, 0);
    if (put_text(tok, p->text, ids, NULL, max, &n, 0) != 0) return -1;
    put_id(ids, NULL, max, &n, tok->assistant, 0);
    return n;
}

long chat_encode_context_pair(const Tokenizer *tok, const ChatPrompt *p, const char *response,
                              int no_eot, int *ids, long max) {
    long n = chat_encode_context(tok, p, ids, max);
    if (n < 0) return -1;
    if (put_text(tok, response, ids, NULL, max, &n, 0) != 0) return -1;
    if (!no_eot) put_id(ids, NULL, max, &n, tok->eot, 0);
    return n;
}

int chat_prompt_fit(const Tokenizer *tok, ChatPrompt *p, long extra, long limit) {
    int dropped = 0;
    for (;;) {
        int none[1];
        long n = chat_encode_context(tok, p, none, 0);  // counts only
        if (n < 0) return -1;
        if (n + extra <= limit || p->n_history == 0) return dropped;
        p->history += 2;
        p->n_history -= 2;
        dropped++;
    }
}
