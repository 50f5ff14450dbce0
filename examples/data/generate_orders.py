#!/usr/bin/env python3
"""Generate examples/data/orders.csv and examples/data/refunds.csv, the sample
input of the `orders` example.

Each line is `id,customer,amount` with the amount in cents. The data is
synthetic; about one line in fifty is deliberately malformed (a missing
field, a non-numeric amount, an empty line) so the example's `errors` port
has something to report.

Regenerate (deterministic: fixed seed, standard library only) from the
repository root:

    python3 examples/data/generate_orders.py
"""

import os
import random

SEED = 20261126
ORDERS = 2000
REFUNDS = 120
CUSTOMERS = ["acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne"]

HERE = os.path.dirname(os.path.abspath(__file__))


def amount(rng):
    # Mostly small orders, a few large ones.
    if rng.random() < 0.05:
        return rng.randint(100_000, 2_000_000)
    return rng.randint(199, 49_999)


def malformed(rng, order_id):
    return rng.choice([
        f"{order_id},{rng.choice(CUSTOMERS)}",
        f"{order_id},{rng.choice(CUSTOMERS)},twelve",
        f"{order_id},,{amount(rng)}",
        "",
        f"#{order_id};{rng.choice(CUSTOMERS)};{amount(rng)}",
    ])


def write(path, count, first_id, rng):
    lines = []
    for i in range(count):
        order_id = first_id + i
        if rng.random() < 0.02:
            lines.append(malformed(rng, order_id))
        else:
            lines.append(f"{order_id},{rng.choice(CUSTOMERS)},{amount(rng)}")
    with open(path, "w", newline="\n") as out:
        out.write("\n".join(lines) + "\n")


def main():
    rng = random.Random(SEED)
    write(os.path.join(HERE, "orders.csv"), ORDERS, 1, rng)
    write(os.path.join(HERE, "refunds.csv"), REFUNDS, 900_001, rng)


if __name__ == "__main__":
    main()
