# python3 mix.py OUTDIR SEED: writes the made-up part of the held-out mix of
# tests/cli_tokenize.sh. Valid UTF-8 (compared with the reference encoder):
#   unicode.txt  random text from many scripts: Latin with diacritics (and
#                combining marks), Greek, Cyrillic, Arabic and its digits,
#                Devanagari, CJK, kana, Hangul, emoji (with ZWJ and skin-tone
#                sequences), symbols, and Unicode spaces between words
#   edge.txt     contractions in every case, digit runs, whitespace runs of
#                every kind before words and at line ends, long words (longer
#                than 256 bytes), punctuation runs, "<|endoftext|>" as text
# Not UTF-8 (round trip only; no reference defines their encoding):
#   invalid.bin  random bytes, and text with stray, cut and overlong sequences
# U+0085 and U+FEFF are left out of the random text: GPT-2's regex under
# JavaScript (the reference) and under Unicode White_Space (PCRE2, Python's
# regex, tiktoken) disagree on whether they are whitespace.
import random, sys

out, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)

def rng_range(lo, hi):
    return chr(rng.randint(lo, hi))

SCRIPTS = [
    (0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xFF), (0x100, 0x17F), (0x391, 0x3C9), (0x410, 0x44F),
    (0x627, 0x64A), (0x905, 0x939), (0x4E00, 0x9FA5), (0x3041, 0x3096), (0x30A1, 0x30FA),
    (0xAC00, 0xD7A3), (0x5D0, 0x5EA),
]
COMBINING = (0x300, 0x36F)
DIGITS = [(0x30, 0x39), (0x660, 0x669), (0x966, 0x96F), (0xFF10, 0xFF19)]
SYMBOLS = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»“”‘’—–…€£¥©®°±×÷∑∞≠≤≥→←↑↓♠♥★☆"
SPACES = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\u00a0", "\u2003", "\u3000", " \n", "\r\n"]
EMOJI = ["🎉", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "🚀", "🤖", "🙈"]

def word():
    kind = rng.random()
    if kind < 0.1:
        lo, hi = rng.choice(DIGITS)
        return "".join(rng_range(lo, hi) for _ in range(rng.randint(1, 8)))
    if kind < 0.18:
        return "".join(rng.choice(SYMBOLS) for _ in range(rng.randint(1, 3)))
    if kind < 0.24:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3)))
    lo, hi = rng.choice(SCRIPTS)
    w = ""
    for _ in range(rng.randint(1, 9)):
        w += rng_range(lo, hi)
        if rng.random() < 0.08:
            w += rng_range(*COMBINING)
    if rng.random() < 0.1:
        w += rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'X"])
    return w

text = []
while sum(map(len, text)) < 60000:
    text.append(word())
    text.append(rng.choice(SPACES))
open(f"{out}/unicode.txt", "w", encoding="utf-8", newline="").write("".join(text))

edge = []
for c in ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "'"]:
    edge += [f"it{c} ", f"x {c} ", f"{c}{c}", f"9{c}\n"]
edge += ["12345678901234567890 ", "3.14159 ", "1,000,000\n", "0x1F ", "½¾ ", "٣٤٥ "]
for ws in [" ", "  ", "   ", "\t", "\t ", " \t", "\n", "\n\n", "\n \n", " \n ", "\u00a0", "\u3000 "]:
    edge += [f"a{ws}b", f"{ws}c", f"d{ws}", f"{ws}{ws}!"]
edge += ["supercalifragilistic" * 20, " " + "ab" * 300, "\n", "9" * 700, " ", "." * 500, "\n"]
edge += ["ü" * 200, " ", "日本語" * 150, "\n", "<|endoftext|> <|user|><|assistant|><|pad|>\n"]
edge += ["!!!???... ---- ==== ____ ****\n", "    indented code\n\tmore\n", "end   "]
open(f"{out}/edge.txt", "w", encoding="utf-8", newline="").write("".join(edge))

bad = bytearray()
for _ in range(3000):
    r = rng.random()
    if r < 0.5:
        bad += bytes([rng.randrange(256)])
    elif r < 0.8:
        bad += rng.choice([b"\x80", b"\xc3", b"\xe6\x97", b"\xf0\x9f\x8e", b"\xc0\xaf", b"\xed\xa0\x80",
                           b"\xff\xfe", b"\xf4\x90\x80\x80", b"\x00"])
    else:
        bad += word().encode("utf-8") + b" "
open(f"{out}/invalid.bin", "wb").write(bytes(bad))
