//go:build unix && !linux

package mmap

// populateFlag is 0 where MAP_POPULATE does not exist: a populated mapping
// is advised WILLNEED instead.
const populateFlag = 0
