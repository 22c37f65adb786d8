#!/usr/bin/python3
"""wordcount: an OpenWhisk actionloop action that counts the words and
lines of a text object.

Protocol (OpenWhisk's actionloop, as run by dedupfn's process runtime and
by OpenWhisk's native actions): write {"ok":true} on file descriptor 3 when
ready, then for each JSON line on stdin answer with exactly one JSON line
on fd 3. The object arrives inline as "body" (base64) when it is small,
else it is read from the presigned "get_url". The result is
{"words": N, "lines": M}; dedupfn stores it as OUTPUT_KEY.json.

Words are runs of non-whitespace bytes (ASCII whitespace separates them);
lines count newline-terminated lines plus a final unterminated one.
Memory stays bounded: the object is read in chunks.

Nothing here needs PATH or any other inherited environment.
"""
import base64
import json
import os
import sys
import urllib.request

CHUNK = 1 << 20
WHITESPACE = b" \t\n\r\v\f"
# Printed on stdout and stderr after each result, so that the logs of one
# activation are told apart from the next one's exactly.
SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"


class Counter:
    """Counts words and lines over a stream of byte chunks."""

    def __init__(self):
        self.words = 0
        self.newlines = 0
        self.size = 0
        self.in_word = False  # the previous chunk ended inside a word
        self.last = b""

    def add(self, chunk):
        if not chunk:
            return
        words = len(chunk.split())
        if self.in_word and chunk[0] not in WHITESPACE:
            words -= 1  # the word continues from the previous chunk
        self.words += words
        self.newlines += chunk.count(b"\n")
        self.size += len(chunk)
        self.in_word = chunk[-1] not in WHITESPACE
        self.last = chunk[-1:]

    def result(self):
        lines = self.newlines
        if self.size and self.last != b"\n":
            lines += 1
        return {"words": self.words, "lines": lines}


def count(value):
    """Counts the object described by value; returns (result, source)."""
    c = Counter()
    if "body" in value:
        data = base64.b64decode(value["body"])
        for i in range(0, len(data), CHUNK):
            c.add(data[i:i + CHUNK])
        return c.result(), "inline body"
    url = value.get("get_url")
    if not url:
        raise ValueError("no inline body and no get_url")
    with urllib.request.urlopen(url, timeout=60) as resp:
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            c.add(chunk)
    return c.result(), "get_url (%d bytes)" % c.size


def main():
    out = os.fdopen(3, "w")
    if os.environ.get("__OW_WAIT_FOR_ACK"):
        out.write('{"ok":true}\n')
        out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        value = {}
        try:
            value = json.loads(line).get("value", {})
            res, source = count(value)
            print("wordcount: %s: %d words, %d lines, read from %s"
                  % (value.get("key", "?"), res["words"], res["lines"], source),
                  file=sys.stderr, flush=True)
        except Exception as e:  # an error result keeps the process warm
            print("wordcount: %s: %s" % (value.get("key", "?"), e), file=sys.stderr, flush=True)
            res = {"error": "wordcount: %s" % e}
        out.write(json.dumps(res) + "\n")
        out.flush()
        print(SENTINEL, flush=True)
        print(SENTINEL, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
