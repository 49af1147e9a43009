package checkpoints

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"os"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
)

// MetadataCRC is the metadata key holding the hex CRC-32C (Castagnoli) of the data section.
// WriteSafetensors always sets it (overriding any caller value); ReadSafetensors verifies it when present.
const MetadataCRC = "fewstep.crc32c"

// metadataKey is the reserved safetensors header key for the string-to-string metadata map.
const metadataKey = "__metadata__"

// maxHeaderLen bounds the JSON header size accepted by ReadSafetensors.
const maxHeaderLen = 100 << 20

// castagnoli is the CRC-32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// TestHookMidWrite, when non-nil, is called by WriteSafetensors after the header and half of the data have been written to
// the temp file (for crash tests).
//
// Test-only: production code must leave it nil. It is read without synchronization.
var TestHookMidWrite func()

// NamedTensor is one tensor to store.
type NamedTensor struct {
	Name   string
	Tensor *tensors.Tensor
}

// safetensorsDTypes maps safetensors dtype names to GoMLX dtypes.
var safetensorsDTypes = map[string]dtypes.DType{
	"F64": dtypes.Float64, "F32": dtypes.Float32, "F16": dtypes.Float16, "BF16": dtypes.BFloat16,
	"I64": dtypes.Int64, "I32": dtypes.Int32, "I16": dtypes.Int16, "I8": dtypes.Int8,
	"U64": dtypes.Uint64, "U32": dtypes.Uint32, "U16": dtypes.Uint16, "U8": dtypes.Uint8,
	"BOOL": dtypes.Bool,
}

// safetensorsName returns the safetensors dtype name of a GoMLX dtype.
func safetensorsName(dt dtypes.DType) (string, bool) {
	for name, d := range safetensorsDTypes {
		if d == dt {
			return name, true
		}
	}
	return "", false
}

// hostIsLittleEndian: tensor bytes are stored in host order and the format is little-endian.
var hostIsLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// headerEntry is the JSON header entry of one tensor.
type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// crcPlaceholder stands in for the CRC until the data has been written; the header starts with
// crcPrefix so the placeholder sits at a fixed offset (crcOffset) and is patched in place.
const (
	crcPrefix      = `{"` + metadataKey + `":{"` + MetadataCRC + `":"`
	crcPlaceholder = "00000000"
	crcOffset      = 8 + len(crcPrefix) // from the start of the file
)

// WriteSafetensors writes tensors (sorted by name in the file) and string metadata in the safetensors format:
// 8-byte little-endian header length N, then N bytes of JSON header {"__metadata__":{...}, "name":{"dtype":"F32","shape":[..],"data_offsets":[begin,end]}, ...}
// padded with spaces so that the data starts 8-byte aligned, then the raw little-endian data.
// dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL.
//
// The write is atomic (temp file + fsync + rename + dir fsync) and streams tensor bytes to the file.
// Metadata key MetadataCRC ("fewstep.crc32c") is set to the hex CRC-32C (Castagnoli) of the data section,
// computed over the bytes actually written. Tensors must not be mutated during the call.
// Names must be non-empty, unique, valid UTF-8 and not "__metadata__"; metadata keys and values valid UTF-8.
func WriteSafetensors(path string, ts []NamedTensor, metadata map[string]string) error {
	if !hostIsLittleEndian {
		return fmt.Errorf("checkpoints: write %s: %w", path, errNotLittleEndian)
	}
	sorted := slices.Clone(ts)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header, total, err := buildHeader(sorted, metadata)
	if err != nil {
		return fmt.Errorf("checkpoints: write %s: %w", path, err)
	}
	hook := TestHookMidWrite
	return writeAtomic(path, 0o644, func(f *os.File) error {
		return writeSafetensorsBody(f, header, sorted, total, hook)
	})
}

// buildHeader validates the (name-sorted) tensors and returns the padded JSON header, with the CRC
// placeholder at crcOffset, and the total data size.
func buildHeader(sorted []NamedTensor, metadata map[string]string) (header []byte, total int64, err error) {
	var buf bytes.Buffer
	buf.WriteString(crcPrefix + crcPlaceholder + `"`)
	keys := make([]string, 0, len(metadata))
	for k := range metadata {
		if k != MetadataCRC {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !utf8.ValidString(k) || !utf8.ValidString(metadata[k]) {
			return nil, 0, fmt.Errorf("metadata %q: key and value must be valid UTF-8 (JSON would alter them)", k)
		}
		buf.WriteByte(',')
		writeJSON(&buf, k)
		buf.WriteByte(':')
		writeJSON(&buf, metadata[k])
	}
	buf.WriteByte('}')
	for i, nt := range sorted {
		if nt.Name == "" || nt.Name == metadataKey || !utf8.ValidString(nt.Name) {
			return nil, 0, fmt.Errorf("tensor #%d: invalid name %q", i, nt.Name)
		}
		if i > 0 && sorted[i-1].Name == nt.Name {
			return nil, 0, fmt.Errorf("tensor %q: duplicate name", nt.Name)
		}
		if nt.Tensor == nil {
			return nil, 0, fmt.Errorf("tensor %q: nil tensor", nt.Name)
		}
		if err := nt.Tensor.CheckValid(); err != nil {
			return nil, 0, fmt.Errorf("tensor %q: %w", nt.Name, err)
		}
		shape := nt.Tensor.Shape()
		dtName, ok := safetensorsName(shape.DType)
		if !ok {
			return nil, 0, fmt.Errorf("tensor %q: dtype %s not supported by safetensors export", nt.Name, shape.DType)
		}
		if shape.IsTuple() || shape.IsDynamic() {
			return nil, 0, fmt.Errorf("tensor %q: shape %s is not a concrete array shape", nt.Name, shape)
		}
		size := shape.ByteSize()
		entry := headerEntry{DType: dtName, Shape: append([]int{}, shape.Dimensions...),
			DataOffsets: [2]int64{total, total + size}}
		total += size
		buf.WriteByte(',')
		writeJSON(&buf, nt.Name)
		buf.WriteByte(':')
		writeJSON(&buf, entry)
	}
	buf.WriteByte('}')
	for buf.Len()%8 != 0 {
		buf.WriteByte(' ')
	}
	return buf.Bytes(), total, nil
}

// writeJSON appends the JSON encoding of v (without HTML escaping or trailing newline) to buf.
// Only used on strings and headerEntry, whose encoding cannot fail.
func writeJSON(buf *bytes.Buffer, v any) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("checkpoints: JSON encoding of %T failed: %v", v, err))
	}
	buf.Truncate(buf.Len() - 1) // Encode appends '\n'.
}

// writeSafetensorsBody writes header and data to f, then patches the CRC into the header.
func writeSafetensorsBody(f *os.File, header []byte, sorted []NamedTensor, total int64, hook func()) error {
	w := bufio.NewWriterSize(f, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(header)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("write header length: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	dw := &dataWriter{w: w, crc: crc32.New(castagnoli), half: total / 2, hook: hook}
	if err := dw.maybeHook(); err != nil {
		return err
	}
	for _, nt := range sorted {
		var werr error
		err := nt.Tensor.ConstBytes(func(data []byte) { werr = dw.write(data) })
		if err == nil {
			err = werr
		}
		if err != nil {
			return fmt.Errorf("tensor %q: %w", nt.Name, err)
		}
	}
	if dw.written != total {
		return fmt.Errorf("wrote %d data bytes, expected %d", dw.written, total)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	sum := make([]byte, 4)
	binary.BigEndian.PutUint32(sum, dw.crc.Sum32())
	if _, err := f.WriteAt([]byte(hex.EncodeToString(sum)), int64(crcOffset)); err != nil {
		return fmt.Errorf("write %s: %w", MetadataCRC, err)
	}
	return nil
}

// dataWriter streams the data section, updating the CRC and calling the test hook once half of it is written.
type dataWriter struct {
	w             *bufio.Writer
	crc           hash.Hash32
	written, half int64
	hook          func()
}

// write writes b, splitting it at the half-way point if the hook is pending.
func (d *dataWriter) write(b []byte) error {
	for len(b) > 0 {
		n := len(b)
		if d.hook != nil && d.written < d.half && d.written+int64(n) > d.half {
			n = int(d.half - d.written)
		}
		if _, err := d.w.Write(b[:n]); err != nil {
			return fmt.Errorf("write data: %w", err)
		}
		_, _ = d.crc.Write(b[:n]) // hash.Hash never fails.
		d.written += int64(n)
		b = b[n:]
		if err := d.maybeHook(); err != nil {
			return err
		}
	}
	return nil
}

// maybeHook flushes and calls the test hook once at least half of the data has been written.
func (d *dataWriter) maybeHook() error {
	if d.hook == nil || d.written < d.half {
		return nil
	}
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	hook := d.hook
	d.hook = nil
	hook()
	return nil
}

// shapeString formats dims for error messages.
func shapeString(dims []int64) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// errNotLittleEndian is returned on big-endian hosts.
var errNotLittleEndian = errors.New("big-endian hosts are not supported")

// newTensor allocates a zeroed local tensor; split out so the reader stays short.
func newTensor(dt dtypes.DType, dims []int64) *tensors.Tensor {
	intDims := make([]int, len(dims))
	for i, d := range dims {
		intDims[i] = int(d)
	}
	return tensors.FromShape(shapes.Make(dt, intDims...))
}
