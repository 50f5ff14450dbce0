#!/usr/bin/env python3
"""Generate examples/data/fragments.csv, the sample input of the `reassembly`
example.

Each line is one fragment of a message, `msg_id,part,total,payload`, with
`part` counted from 1 and the payload running to the end of the line (so it
may hold commas). Messages are split into 1 to 6 fragments and the lines are
in the order a receiver would see them on a network: each message starts at
a random point of the capture and its fragments arrive within a short window
after that, out of order and interleaved with other messages'.

The data is synthetic and, so that the example has something to report,
deliberately imperfect:

* some messages lose one fragment, so they never complete;
* a few have one fragment arriving very late, after its message's time to
  live (the example replays a line every 0.7 ms and gives a message 200 ms,
  about 285 lines; a late fragment comes 450 to 600 lines after its
  message's first one);
* a couple have one fragment whose `total` disagrees with the others';
* about one line in a hundred is malformed (a wrong separator, a missing
  field, a part that is not a number or beyond the total, a total of zero,
  a line of garbage, an empty line).

Regenerate (deterministic: fixed seed, standard library only) from the
repository root:

    python3 examples/data/generate_fragments.py
"""

import math
import os
import random

SEED = 20261127
MESSAGES = 400
# Lines over which first fragments are spread, and the window within which
# the other fragments of a message follow its first.
SPREAD = 1350
WINDOW = 60
# Lines a late fragment comes after its message's first one.
LATE = (450, 600)
# Characters per fragment, roughly.
FRAGMENT = 28
MAX_PARTS = 6

MISSING = 0.04
LATE_COUNT = 5
CONFLICTING = 2
MALFORMED = 0.01

HERE = os.path.dirname(os.path.abspath(__file__))

CITIES = ["Lisbon", "Porto", "Oslo", "Bergen", "Lyon", "Ghent", "Turin", "Cork", "Graz", "Malmo"]
NAMES = ["ana", "bruno", "chen", "dara", "emeka", "freya", "goran", "hana", "ines", "jonas"]
CARRIERS = ["DHL", "UPS", "PostNL", "GLS", "DPD"]
HOSTS = ["db-1", "db-2", "web-3", "web-4", "cache-1", "queue-2"]


def sentence(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return (f"user {rng.choice(NAMES)} logged in from {rng.choice(CITIES)}, "
                f"session {rng.getrandbits(32):08x}")
    if kind == 1:
        return (f"sensor {rng.randint(1, 64)}: temperature {rng.uniform(-5, 35):.1f}C, "
                f"humidity {rng.randint(20, 95)}%, battery {rng.randint(5, 100)}%")
    if kind == 2:
        return (f"order #{rng.randint(1000, 9999)} shipped to {rng.choice(CITIES)}, "
                f"{rng.randint(1, 6)} parcels, carrier {rng.choice(CARRIERS)}")
    if kind == 3:
        return (f"alert: disk /dev/sd{rng.choice('abcd')} at {rng.randint(91, 99)}% "
                f"on {rng.choice(HOSTS)}, threshold 90%")
    return (f"{rng.choice(NAMES)} to {rng.choice(NAMES)}: meet at the {rng.choice(CITIES)} "
            f"office at {rng.randint(8, 17)}:{rng.choice(['00', '15', '30', '45'])}")


def split(text, parts):
    size = math.ceil(len(text) / parts)
    return [text[i * size:(i + 1) * size] for i in range(parts)]


def malformed(rng, msg_id, kind):
    total = rng.randint(2, 5)
    return [
        f"{msg_id};1;{total};payload with the wrong separator",
        f"{msg_id},2,{total}",
        f"{msg_id},two,{total},part that is not a number",
        f"{msg_id},{total + 1},{total},part beyond the total",
        f"{msg_id},1,0,a total of zero",
        "",
        f"GARBAGE {rng.getrandbits(64):016x}",
    ][kind]


def main():
    rng = random.Random(SEED)
    messages = []  # [arrivals, fragments]
    for msg_id in range(1, MESSAGES + 1):
        text = "; ".join(sentence(rng) for _ in range(rng.choice([1, 1, 1, 2, 2, 3])))
        parts = max(1, min(MAX_PARTS, math.ceil(len(text) / FRAGMENT)))
        fragments = [[msg_id, part + 1, parts, payload]
                     for part, payload in enumerate(split(text, parts))]
        start = rng.uniform(0, SPREAD)
        # When each fragment arrives; the first to arrive opens the message.
        arrivals = sorted(start + rng.uniform(0, WINDOW) for _ in fragments)
        arrivals[0] = start
        rng.shuffle(fragments)
        if parts > 1 and rng.random() < MISSING:
            fragments.pop(rng.randrange(1, parts))
            arrivals.pop()
        messages.append([arrivals, fragments])

    # Late fragments, where the capture goes on long enough to see them.
    eligible = [m for m in messages
                if len(m[1]) > 1 and m[0][0] < SPREAD - LATE[1] and len(m[1]) == m[1][0][2]]
    for arrivals, _ in rng.sample(eligible, LATE_COUNT):
        arrivals[-1] = arrivals[0] + rng.uniform(*LATE)

    events = []  # (arrival, tie-break, line)
    for arrivals, fragments in messages:
        for arrival, fragment in zip(arrivals, fragments):
            events.append((arrival, rng.random(), ",".join(map(str, fragment))))

    # A few messages carry one fragment with a disagreeing total.
    multi = [i for i, e in enumerate(events) if int(e[2].split(",", 3)[2]) > 2]
    for index in rng.sample(multi, CONFLICTING):
        arrival, tie, line = events[index]
        msg_id, part, total, payload = line.split(",", 3)
        events[index] = (arrival, tie, f"{msg_id},{part},{int(total) + 1},{payload}")

    events.sort()
    lines = []
    bad = 0
    for _, _, line in events:
        if rng.random() < MALFORMED:
            # Each kind of mistake in turn.
            lines.append(malformed(rng, rng.randint(1, MESSAGES), bad % 7))
            bad += 1
        lines.append(line)
    with open(os.path.join(HERE, "fragments.csv"), "w", newline="\n") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
