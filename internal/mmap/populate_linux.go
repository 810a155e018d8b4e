package mmap

import "golang.org/x/sys/unix"

// populateFlag reads the mapping's pages in before mmap returns.
const populateFlag = unix.MAP_POPULATE
