#!/usr/bin/env python3
"""Generate examples/data/access.log, the sample input of the `access_log`
example.

An hour of a small shop's web server, in the combined log format:

    203.0.113.7 - - [12/Mar/2025:10:15:32 +0000] "GET /index.html HTTP/1.1" 200 5123 "-" "Mozilla/5.0 (...)"

The data is synthetic: clients come from the documentation address ranges
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), and a few lines are
deliberately broken so that the example has errors to route: a truncated
line, a request that is not HTTP, a line with a bad byte count, and one line
whose user agent holds bytes that are not UTF-8.

Regenerate (deterministic: fixed seed, standard library only) from the
repository root:

    python3 examples/data/generate_access_log.py
"""

import datetime
import os
import random

SEED = 20250312
LINES = 400
START = datetime.datetime(2025, 3, 12, 10, 0, 0)

HERE = os.path.dirname(os.path.abspath(__file__))

AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "curl/8.5.0",
    "shop-monitor/2.1 (+https://status.example.net)",
    "ExampleBot/1.0 (+https://bot.example.org/about)",
]

# (method, path, weight, typical size in bytes)
PAGES = [
    ("GET", "/", 30, 5120),
    ("GET", "/index.html", 10, 5120),
    ("GET", "/products", 18, 14200),
    ("GET", "/products/{id}", 40, 8900),
    ("GET", "/static/css/site.css", 20, 23100),
    ("GET", "/static/js/app.js", 20, 61800),
    ("GET", "/images/logo.png", 15, 9400),
    ("GET", "/favicon.ico", 8, 1150),
    ("GET", "/robots.txt", 3, 68),
    ("GET", "/api/v1/orders/{id}", 10, 730),
    ("POST", "/api/v1/orders", 8, 212),
    ("POST", "/login", 6, 0),
    ("GET", "/wp-login.php", 3, 162),
    ("GET", "/.env", 2, 162),
]


def status_for(rng, method, path):
    if path in ("/wp-login.php", "/.env"):
        return 404
    if path == "/login":
        return rng.choices([302, 401], weights=[5, 1])[0]
    if path.startswith("/static/") or path.startswith("/images/"):
        return rng.choices([200, 304], weights=[2, 3])[0]
    if path.startswith("/api/"):
        return rng.choices([200, 201, 400, 500, 503], weights=[30, 0, 3, 1, 1])[0] if method == "GET" \
            else rng.choices([201, 400, 500], weights=[20, 3, 1])[0]
    if path == "/index.html":
        return rng.choices([200, 301], weights=[1, 1])[0]
    return rng.choices([200, 404, 500], weights=[60, 2, 1])[0]


def size_for(rng, status, typical):
    if status in (304, 301, 302):
        return 0
    if status >= 400:
        return rng.randint(150, 600)
    return max(0, int(rng.gauss(typical, typical * 0.05)))


def client(rng):
    net = rng.choice(["192.0.2", "198.51.100", "203.0.113"])
    return f"{net}.{rng.randint(2, 60)}"


def main():
    rng = random.Random(SEED)
    moment = START
    lines = []
    whens = []
    for _ in range(LINES):
        moment += datetime.timedelta(seconds=rng.randint(0, 17))
        method, path, _, typical = rng.choices(PAGES, weights=[p[2] for p in PAGES])[0]
        path = path.replace("{id}", str(rng.randint(100, 180)))
        status = status_for(rng, method, path)
        size = size_for(rng, status, typical)
        referer = rng.choice(["-", "-", "https://shop.example.com/", "https://www.example.org/search?q=shop"])
        when = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
        whens.append(when.encode())
        shown_size = "-" if size == 0 else str(size)
        lines.append(
            f'{client(rng)} - - [{when}] "{method} {path} HTTP/1.1" {status} {shown_size} '
            f'"{referer}" "{rng.choice(AGENTS)}"'.encode()
        )
    # The broken lines, at fixed places, at the time of the lines they replace.
    broken = {
        57: b'198.51.100.23 - - [%s] "GET /products/1',
        131: b'192.0.2.44 - - [%s] "\\x16\\x03\\x01\\x00\\xEE\\x01\\x00" 400 157 "-" "-"',
        248: b'203.0.113.9 - - [%s] "GET /products HTTP/1.1" 200 fourteen "-" "curl/8.5.0"',
        302: b'203.0.113.31 - - [%s] "GET / HTTP/1.1" 200 5087 "-" "Scanner \xff\xfe/0.1"',
    }
    for at, line in broken.items():
        lines[at] = line % whens[at]
    with open(os.path.join(HERE, "access.log"), "wb") as out:
        out.write(b"\n".join(lines) + b"\n")


if __name__ == "__main__":
    main()
