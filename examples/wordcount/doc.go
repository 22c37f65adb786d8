// Package wordcount is an example OpenWhisk actionloop action for dedupfn:
// wordcount.py counts the words and lines of each uploaded text object and
// returns {"words": N, "lines": M}. It runs unchanged in dedupfn's process
// runtime (fn deploy --exec wordcount.py) and as an OpenWhisk native
// action. The package's test runs it through the process runtime; see
// README.md.
package wordcount
