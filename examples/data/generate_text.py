#!/usr/bin/env python3
"""Generate examples/data/words.txt, the sample input of the word-count examples.

The text is synthetic (no copyrighted prose is shipped): paragraphs of
English-looking sentences whose words follow a Zipf distribution over a
hand-written vocabulary of common English words, so a word-frequency count
over it has a realistic shape ("the", "of" and "and" on top, a long tail).

Regenerate (deterministic: fixed seed, standard library only):

    python3 examples/data/generate_text.py

from the repository root, or pass an output path as the only argument.
The output is byte-for-byte identical on every run and platform.
"""

import os
import random
import sys
import textwrap

SEED = 20240611
TARGET_LINES = 3000
WRAP_WIDTH = 66
# Zipf exponent; about 1.0 for natural English text.
ZIPF_S = 1.0

# Common English words, roughly ordered by real-world frequency. The order is
# what matters: rank r gets weight 1 / r**ZIPF_S. Contractions are included so
# the tokenizer of the examples has apostrophes to deal with.
VOCABULARY = """
the of and to a in that it is was i for on you he be with as by at have are
this not but had his they from she which or we an there her were one do been
all their has would will what if can when so no said who more about up them
some could him into its then two time like other than my only over also new
just any see after me first very your now people way our may well should
because each how these know most made out where much those before great must
through back down even many years little here good day old us make come man
get work between both life being under still never while last might same
another long think own world around house off again too three place went
every found take thought without upon against small always nothing think
though home away something head why large few face seemed left hand eyes set
night things room upon often young asked door took end look once told
course among side perhaps mind letter father mother sister brother family
friend evening morning moment words soon half almost felt next better less
enough whole heart kind either toward manner indeed rather feeling quite
certainly since however himself herself itself myself themselves give given
gave tell spoke replied cried answered talked walked turned stood sat heard
knew saw came going done seen known made began seemed believe hope wish
wished happy pleasure pleased dear pretty fine fair handsome agreeable civil
proud pride prejudice ball dance party visit neighbour neighbourhood town
country estate fortune income marriage married daughter daughters son wife
husband ladies gentleman gentlemen young girl girls lady sir madam
opinion subject attention conversation company character situation
circumstances acquaintance affection regard respect civility manners
cannot shall let nor yet such own till towards whether within soon surely
don't can't won't it's i'm didn't isn't wasn't couldn't wouldn't shouldn't
i've you're he's she's that's there's let's
""".split()

# Proper nouns, capitalised wherever they appear; they give the text mixed
# case beyond sentence starts.
NAMES = """
Elizabeth Jane Mary Kitty Lydia Bennet Bingley Darcy Collins Charlotte
Lucas Netherfield Longbourn Meryton London Hertfordshire Monday Michaelmas
""".split()


def dedup(words):
    seen = set()
    out = []
    for w in words:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def build_weights(words):
    # Names sit in the middle of the ranking, interleaved into the tail, so
    # they are visible but not dominant.
    ranked = list(words)
    step = max(1, (len(ranked) - 60) // len(NAMES))
    for i, name in enumerate(NAMES):
        ranked.insert(60 + i * step, name)
    cum = []
    total = 0.0
    for rank, _ in enumerate(ranked, start=1):
        total += 1.0 / rank**ZIPF_S
        cum.append(total)
    return ranked, cum


def sentence(rng, ranked, cum):
    length = rng.randint(5, 22)
    words = rng.choices(ranked, cum_weights=cum, k=length)
    # Avoid the same word twice in a row ("the the"), which looks artificial.
    for i in range(1, len(words)):
        while words[i].lower() == words[i - 1].lower():
            words[i] = rng.choices(ranked, cum_weights=cum, k=1)[0]
    words = ["I" if w == "i" else w for w in words]
    words = [w.replace("i'", "I'", 1) if w.startswith("i'") else w for w in words]
    # Commas after some words, never after the last one.
    for i in range(2, len(words) - 2):
        if rng.random() < 0.08:
            words[i] += ","
    words[0] = words[0][0].upper() + words[0][1:]
    roll = rng.random()
    end = "?" if roll < 0.12 else ("!" if roll < 0.16 else ".")
    return " ".join(words) + end


def paragraph(rng, ranked, cum):
    n = rng.randint(2, 9)
    text = " ".join(sentence(rng, ranked, cum) for _ in range(n))
    return textwrap.wrap(text, width=WRAP_WIDTH)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "words.txt")
    rng = random.Random(SEED)
    ranked, cum = build_weights(dedup(VOCABULARY))
    lines = []
    while len(lines) < TARGET_LINES:
        if lines:
            lines.append("")
        lines.extend(paragraph(rng, ranked, cum))
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    size = os.path.getsize(out_path)
    print(f"wrote {out_path}: {len(lines)} lines, {size} bytes")


if __name__ == "__main__":
    main()
