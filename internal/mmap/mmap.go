// Package mmap maps model files read-only for the format readers, with
// their pages read in at map time as llama.cpp's loader does (it maps with
// MAP_POPULATE on Linux): a model's first forward pass then computes instead
// of waiting on page faults, and the load time counts the reading.
package mmap
