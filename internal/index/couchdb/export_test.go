package couchdb

// DesignVersionForTest is the version of the design document this
// version writes.
const DesignVersionForTest = designVersion
