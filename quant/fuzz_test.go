package quant

import (
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// FuzzDequantize feeds random bytes, types and lengths to Dequantize and
// DotRows: they must return an error or succeed, never panic, and succeed
// exactly when the lengths agree.
func FuzzDequantize(f *testing.F) {
	for dt := tensor.F32; dt <= tensor.IQ4_XS; dt++ {
		if !dt.Valid() {
			continue
		}
		blk := make([]byte, dt.TypeSize())
		for i := range blk {
			blk[i] = byte(i*37 + int(dt))
		}
		f.Add(blk, uint8(dt), uint16(dt.BlockSize()))
		f.Add(blk, uint8(dt), uint16(dt.BlockSize()+1))
	}
	f.Fuzz(func(t *testing.T, data []byte, typ uint8, n uint16) {
		dt := tensor.DType(typ)
		dst := make([]float32, n)
		err := Dequantize(dt, data, dst)
		_, supported := dequantizers[dt]
		want, lenErr := dt.RowBytes(int(n))
		ok := supported && lenErr == nil && want == len(data)
		if (err == nil) != ok {
			t.Fatalf("Dequantize(%v, %d bytes, %d elements): err = %v, want success %v", dt, len(data), n, err, ok)
		}

		// The largest whole number of blocks that data holds must decode.
		if supported && dt.TypeSize() > 0 {
			nb := len(data) / dt.TypeSize()
			m := nb * dt.BlockSize()
			if err := Dequantize(dt, data[:nb*dt.TypeSize()], make([]float32, m)); err != nil {
				t.Fatalf("Dequantize(%v, %d whole blocks): %v", dt, nb, err)
			}
		}

		// DotRows validates the same way; a zero activation of the right
		// size must work whenever the row fits.
		vt := VecDotType(dt)
		if vt == tensor.Invalid {
			return
		}
		ab, err := vt.RowBytes(int(n))
		if err != nil {
			return
		}
		out := make([]float32, 1)
		err = DotRows(dt, data, max(want, 1), 0, 1, make([]byte, ab), int(n), out)
		if (err == nil) != (lenErr == nil && want <= len(data)) {
			t.Fatalf("DotRows(%v, %d bytes, n=%d): err = %v", dt, len(data), n, err)
		}
	})
}
