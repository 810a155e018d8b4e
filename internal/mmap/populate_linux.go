package mmap

import "golang.org/x/sys/unix"

// populate reads the mapping's pages in before Map returns.
const populate = unix.MAP_POPULATE
