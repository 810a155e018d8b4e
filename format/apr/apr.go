// Package apr reads and writes APR v2 files, apr's own model format
// (specified in docs/apr-format.md): a fixed header, a JSON metadata block
// (hyperparameters, the full tokenizer, chat template, sampling defaults,
// provenance), a binary tensor index, and tensor data aligned to 64 bytes so
// that it can be mmapped. The header carries CRC-32C checksums of itself, the
// metadata and the index, and a SHA-256 of everything after it; the index a
// CRC-32C per tensor.
//
// Open maps a file and validates every size, offset and count before the
// bytes are trusted, and verifies the header, metadata and index checksums;
// Verify (and Open with Verify set) also checks the per-tensor and
// whole-file checksums, naming the first one that fails. Tensors have
// canonical (Hugging Face) names and row-major shapes; a fused
// self_attn.qkv_proj weight or bias is split into Q, K and V views.
package apr

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"

	"github.com/apr-llm/apr/tensor"
)

// Magic is the four bytes an APR file starts with.
const Magic = "APR\x00"

// Version is the format version this package reads and writes.
const Version = 2

// Alignment of the data section and of every tensor in it.
const Alignment = 64

// HeaderSize is the size of the fixed header.
const HeaderSize = 128

// Fused tensor names (after "model.layers.N.").
const (
	FusedQKV  = "self_attn.qkv_proj.weight"
	FusedQKVB = "self_attn.qkv_proj.bias"
)

// Limits that keep a hostile file from causing huge allocations.
const (
	maxMetadata = 1 << 30
	maxIndex    = 1 << 28
	maxTensors  = 1 << 20
	maxName     = 1024
	maxDims     = 8
)

// ErrInvalid is wrapped by every error about a malformed file.
var ErrInvalid = errors.New("invalid APR file")

// ErrChecksum is wrapped by every checksum failure.
var ErrChecksum = errors.New("checksum mismatch")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// header is the decoded fixed header (see docs/apr-format.md).
type header struct {
	version            uint32
	flags              uint32
	alignment          uint32
	metaOff, metaLen   uint64
	indexOff, indexLen uint64
	dataOff, dataLen   uint64
	count              uint64
	metaCRC, indexCRC  uint32
	fileSHA            [32]byte
	headerCRC          uint32
}

const headerCRCOffset = 112

func (h *header) encode() []byte {
	b := make([]byte, HeaderSize)
	le := binary.LittleEndian
	copy(b, Magic)
	le.PutUint32(b[4:], h.version)
	le.PutUint32(b[8:], h.flags)
	le.PutUint32(b[12:], h.alignment)
	le.PutUint64(b[16:], h.metaOff)
	le.PutUint64(b[24:], h.metaLen)
	le.PutUint64(b[32:], h.indexOff)
	le.PutUint64(b[40:], h.indexLen)
	le.PutUint64(b[48:], h.dataOff)
	le.PutUint64(b[56:], h.dataLen)
	le.PutUint64(b[64:], h.count)
	le.PutUint32(b[72:], h.metaCRC)
	le.PutUint32(b[76:], h.indexCRC)
	copy(b[80:112], h.fileSHA[:])
	le.PutUint32(b[headerCRCOffset:], crc(b[:headerCRCOffset]))
	return b
}

func decodeHeader(b []byte) header {
	le := binary.LittleEndian
	h := header{
		version: le.Uint32(b[4:]), flags: le.Uint32(b[8:]), alignment: le.Uint32(b[12:]),
		metaOff: le.Uint64(b[16:]), metaLen: le.Uint64(b[24:]),
		indexOff: le.Uint64(b[32:]), indexLen: le.Uint64(b[40:]),
		dataOff: le.Uint64(b[48:]), dataLen: le.Uint64(b[56:]),
		count: le.Uint64(b[64:]), metaCRC: le.Uint32(b[72:]), indexCRC: le.Uint32(b[76:]),
		headerCRC: le.Uint32(b[headerCRCOffset:]),
	}
	copy(h.fileSHA[:], b[80:112])
	return h
}

// entry is one tensor of the index.
type entry struct {
	name   string
	dtype  tensor.DType
	shape  []int
	offset uint64 // from the start of the data section
	size   uint64
	crc    uint32
}

// encodeEntry appends e's index record to b.
func encodeEntry(b []byte, e *entry) []byte {
	le := binary.LittleEndian
	ggml, _ := e.dtype.GGMLType()
	b = le.AppendUint16(b, uint16(len(e.name)))
	b = append(b, e.name...)
	b = le.AppendUint32(b, ggml)
	b = le.AppendUint32(b, uint32(len(e.shape)))
	for _, d := range e.shape {
		b = le.AppendUint64(b, uint64(d))
	}
	b = le.AppendUint64(b, e.offset)
	b = le.AppendUint64(b, e.size)
	return le.AppendUint32(b, e.crc)
}

func padTo(n, align uint64) uint64 { return (n + align - 1) / align * align }

// maxInt is the largest int, for size checks.
const maxInt = math.MaxInt
