package checkpoints

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
)

// fileEntry is one validated tensor entry of a safetensors header.
type fileEntry struct {
	name       string
	dtype      dtypes.DType
	dims       []int64
	begin, end int64 // offsets into the data section
}

// ReadSafetensors reads and validates a file: header length sane (< 100 MB and < file size), header valid UTF-8 JSON
// beginning with '{' (as the format requires) without duplicate keys, known dtypes, offsets [begin, end] with
// begin <= end, contiguous from 0, in-bounds, non-overlapping, covering the whole data section and matching
// dtype*shape sizes, BOOL bytes 0 or 1, and the CRC-32C in metadata key MetadataCRC if present. Errors name the file and the tensor. The returned tensors live in local (host) memory;
// metadata is never nil.
func ReadSafetensors(path string) (ts map[string]*tensors.Tensor, metadata map[string]string, err error) {
	return readSafetensors(path, true)
}

// verifySafetensors runs every check of ReadSafetensors without keeping the tensors in memory.
func verifySafetensors(path string) error {
	_, _, err := readSafetensors(path, false)
	return err
}

// readSafetensors implements ReadSafetensors; with load=false it only validates (ts is nil).
func readSafetensors(path string, load bool) (ts map[string]*tensors.Tensor, metadata map[string]string, err error) {
	if !hostIsLittleEndian {
		return nil, nil, fmt.Errorf("checkpoints: read %s: %w", path, errNotLittleEndian)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoints: read %s: %w", path, err)
	}
	defer func() { _ = f.Close() }() // read-only: a close error loses nothing.
	info, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoints: read %s: %w", path, err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	entries, metadata, err := readHeader(r, info.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoints: read %s: %w", path, err)
	}
	crc := crc32.New(castagnoli)
	src := io.TeeReader(r, crc)
	if load {
		ts = make(map[string]*tensors.Tensor, len(entries))
	}
	for _, e := range entries { // entries are in data order, contiguous from offset 0.
		t, err := readTensor(src, e, load)
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoints: read %s: tensor %q: %w", path, e.name, err)
		}
		if load {
			ts[e.name] = t
		}
	}
	if want, ok := metadata[MetadataCRC]; ok {
		got := fmt.Sprintf("%08x", crc.Sum32())
		if !strings.EqualFold(strings.TrimSpace(want), got) {
			return nil, nil, fmt.Errorf("checkpoints: read %s: data section CRC-32C is %s but metadata %s says %q: file is corrupt",
				path, got, MetadataCRC, want)
		}
	}
	return ts, metadata, nil
}

// readHeader reads the header length and JSON header from r (positioned at the start of a file of the given size)
// and returns the validated entries sorted in data order.
func readHeader(r io.Reader, fileSize int64) ([]fileEntry, map[string]string, error) {
	if fileSize < 8 {
		return nil, nil, fmt.Errorf("file is %d bytes, too short for the 8-byte header length", fileSize)
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, nil, fmt.Errorf("read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n >= maxHeaderLen {
		return nil, nil, fmt.Errorf("header length %d is not below the %d-byte limit (corrupt or not a safetensors file)", n, maxHeaderLen)
	}
	if int64(n) > fileSize-8 {
		return nil, nil, fmt.Errorf("header length %d exceeds the %d bytes after it (truncated or not a safetensors file)", n, fileSize-8)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, nil, fmt.Errorf("read %d-byte header: %w", n, err)
	}
	if n == 0 || header[0] != '{' {
		return nil, nil, fmt.Errorf("header is not a JSON object: it must begin with '{' (got %q)", header[:min(n, 16)])
	}
	if !utf8.Valid(header) {
		return nil, nil, errors.New("header is not valid UTF-8")
	}
	entries, metadata, err := parseHeader(header)
	if err != nil {
		return nil, nil, err
	}
	if err := validateLayout(entries, fileSize-8-int64(n)); err != nil {
		return nil, nil, err
	}
	return entries, metadata, nil
}

// parseHeader decodes the JSON header object, rejecting duplicate keys and trailing garbage.
func parseHeader(header []byte) ([]fileEntry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("header is not a JSON object (token %v, error %v)", tok, err)
	}
	metadata := map[string]string{}
	var entries []fileEntry
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("invalid header JSON: %w", err)
		}
		key, _ := tok.(string) // object keys are always strings.
		if seen[key] {
			return nil, nil, fmt.Errorf("header: duplicate key %q", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("invalid header JSON at key %q: %w", key, err)
		}
		if key == metadataKey {
			if string(raw) != "null" {
				if err := json.Unmarshal(raw, &metadata); err != nil {
					return nil, nil, fmt.Errorf("header: %s must map strings to strings: %w", metadataKey, err)
				}
			}
			continue
		}
		e, err := parseEntry(key, raw)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, nil, fmt.Errorf("invalid header JSON: unterminated object (token %v, error %v)", tok, err)
	}
	if tok, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("invalid header JSON: trailing data after the object (token %v, error %v)", tok, err)
	}
	return entries, metadata, nil
}

// parseEntry decodes and checks one tensor entry: known dtype, non-negative dims and offsets,
// and data_offsets span == dtype size × number of elements.
func parseEntry(name string, raw json.RawMessage) (fileEntry, error) {
	var j struct {
		DType       *string  `json:"dtype"`
		Shape       *[]int64 `json:"shape"`
		DataOffsets *[]int64 `json:"data_offsets"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fileEntry{}, fmt.Errorf("tensor %q: invalid header entry: %w", name, err)
	}
	if j.DType == nil || j.Shape == nil || j.DataOffsets == nil {
		return fileEntry{}, fmt.Errorf("tensor %q: header entry needs dtype, shape and data_offsets: %s", name, raw)
	}
	dt, ok := safetensorsDTypes[*j.DType]
	if !ok {
		return fileEntry{}, fmt.Errorf("tensor %q: unsupported dtype %q", name, *j.DType)
	}
	offs := *j.DataOffsets
	switch {
	case len(offs) != 2:
		return fileEntry{}, fmt.Errorf("tensor %q: invalid data_offsets %v: want [begin, end]", name, offs)
	case offs[0] < 0:
		return fileEntry{}, fmt.Errorf("tensor %q: invalid data_offsets %v: negative offset", name, offs)
	case offs[1] < offs[0]:
		return fileEntry{}, fmt.Errorf("tensor %q: invalid data_offsets %v: end before begin", name, offs)
	}
	e := fileEntry{name: name, dtype: dt, dims: *j.Shape, begin: offs[0], end: offs[1]}
	size, ok := byteSize(e.dims, int64(dt.Size()))
	if !ok {
		return fileEntry{}, fmt.Errorf("tensor %q: invalid or oversized shape %s", name, shapeString(e.dims))
	}
	if size != e.end-e.begin {
		return fileEntry{}, fmt.Errorf("tensor %q: data_offsets [%d,%d] span %d bytes, but %s %s needs %d",
			name, e.begin, e.end, e.end-e.begin, *j.DType, shapeString(e.dims), size)
	}
	return e, nil
}

// byteSize returns elemSize × product(dims); ok is false for negative dims or overflow.
func byteSize(dims []int64, elemSize int64) (size int64, ok bool) {
	elems := int64(1)
	overflow := false
	for _, d := range dims {
		if d < 0 || d > math.MaxInt {
			return 0, false
		}
		if d == 0 {
			return 0, true // zero-size shape, whatever the other dims.
		}
		if elems > math.MaxInt64/d {
			overflow = true
		} else {
			elems *= d
		}
	}
	if overflow || elems > math.MaxInt64/elemSize {
		return 0, false
	}
	return elems * elemSize, true
}

// validateLayout sorts entries by offset and checks that they tile the data section exactly:
// starting at 0, each beginning where the previous ended, the last ending at dataLen.
func validateLayout(entries []fileEntry, dataLen int64) error {
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.name < b.name
	})
	for _, e := range entries { // out-of-range first: it names the culprit, where a gap would name its successor
		if e.end > dataLen {
			return fmt.Errorf("tensor %q: data_offsets [%d,%d] run past the %d-byte data section (file truncated?)",
				e.name, e.begin, e.end, dataLen)
		}
	}
	prevEnd, prevName := int64(0), ""
	for _, e := range entries {
		switch {
		case e.begin < prevEnd:
			return fmt.Errorf("tensor %q: data_offsets [%d,%d] overlap tensor %q (which ends at %d)",
				e.name, e.begin, e.end, prevName, prevEnd)
		case e.begin > prevEnd:
			return fmt.Errorf("tensor %q: data_offsets [%d,%d] leave a gap after byte %d", e.name, e.begin, e.end, prevEnd)
		}
		prevEnd, prevName = e.end, e.name
	}
	if prevEnd != dataLen {
		return fmt.Errorf("data section is %d bytes but the tensors cover only %d (trailing bytes)", dataLen, prevEnd)
	}
	return nil
}

// readTensor reads the e.end-e.begin bytes of one tensor from src. With load=false the bytes are
// checked and discarded.
func readTensor(src io.Reader, e fileEntry, load bool) (*tensors.Tensor, error) {
	n := e.end - e.begin
	isBool := e.dtype == dtypes.Bool
	if !load {
		buf := make([]byte, min(n, 1<<16))
		for done := int64(0); done < n; {
			chunk := buf[:min(n-done, int64(len(buf)))]
			if _, err := io.ReadFull(src, chunk); err != nil {
				return nil, fmt.Errorf("read data: %w", err)
			}
			if isBool {
				if err := checkBool(chunk, done); err != nil {
					return nil, err
				}
			}
			done += int64(len(chunk))
		}
		return nil, nil
	}
	t := newTensor(e.dtype, e.dims)
	var rerr error
	err := t.MutableBytes(func(data []byte) {
		if int64(len(data)) != n {
			rerr = fmt.Errorf("tensor buffer is %d bytes, expected %d", len(data), n)
			return
		}
		if _, rerr = io.ReadFull(src, data); rerr != nil {
			rerr = fmt.Errorf("read data: %w", rerr)
			return
		}
		if isBool {
			rerr = checkBool(data, 0)
		}
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// checkBool checks that every byte of a BOOL tensor is 0 or 1 (other values are not valid Go bools).
func checkBool(data []byte, base int64) error {
	for i, v := range data {
		if v > 1 {
			return fmt.Errorf("BOOL element %d has byte value %d, expected 0 or 1", base+int64(i), v)
		}
	}
	return nil
}
