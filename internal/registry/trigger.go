package registry

import (
	"slices"
	"strings"
)

// The parts of a trigger an object may fail to match (see Mismatch).
const (
	MismatchBucket = "bucket"
	MismatchPrefix = "prefix"
	MismatchSuffix = "suffix"
)

// Mismatch names the first part of f's trigger that an object does not
// match (MismatchBucket, MismatchPrefix or MismatchSuffix), or "" when
// the object triggers f. Suffixes match case-insensitively.
func (f *Function) Mismatch(bucket, key string) string {
	switch {
	case bucket != f.Trigger.Bucket:
		return MismatchBucket
	case !strings.HasPrefix(key, f.Trigger.Prefix):
		return MismatchPrefix
	case len(f.Trigger.Suffixes) == 0:
		return ""
	}
	lower := strings.ToLower(key)
	if slices.ContainsFunc(f.Trigger.Suffixes, func(s string) bool { return strings.HasSuffix(lower, strings.ToLower(s)) }) {
		return ""
	}
	return MismatchSuffix
}
