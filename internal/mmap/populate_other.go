//go:build unix && !linux

package mmap

// populate is 0 where MAP_POPULATE does not exist: Map advises WILLNEED.
const populate = 0
