package testutil

import "encoding/hex"

// The public MD5 collision pair of Wang, Feng, Lai and Yu (2004): two
// 128-byte blocks with the same MD5 (79054025255fb1a26e4bc422aef54eb4)
// and different SHA-256s, which is all an attacker needs to make two
// contents look alike to anything that trusts an MD5 or an S3 ETag.
const (
	md5PairA = "d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f8955ad340609f4b30283e488832571415a085125e8f7cdc99fd91dbdf280373c5bd8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70"
	md5PairB = "d131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f8955ad340609f4b30283e4888325f1415a085125e8f7cdc99fd91dbd7280373c5bd8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70"
)

// MD5CollisionPair returns two different contents with the same MD5
// (fresh copies on every call).
func MD5CollisionPair() (a, b []byte) {
	a, err := hex.DecodeString(md5PairA)
	if err != nil {
		panic(err)
	}
	b, err = hex.DecodeString(md5PairB)
	if err != nil {
		panic(err)
	}
	return a, b
}
