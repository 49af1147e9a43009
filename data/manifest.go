package data

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ManifestEntry is one image of a folder manifest (see ReadManifest).
type ManifestEntry struct {
	File     string // image path as written: relative to the manifest's directory, or absolute
	Caption  string
	Label    int32
	HasLabel bool
	Score    float32
	HasScore bool
	Line     int // 1-based line of the entry in the manifest
}

// manifestFields are the columns (CSV) or keys (JSONL) a manifest may use; file is required.
var manifestFields = []string{"file", "caption", "label", "score"}

// maxManifestLine bounds one JSONL line.
const maxManifestLine = 1 << 20

// ReadManifest reads a folder manifest: CSV with a header line (extension .csv) or JSON
// Lines, one object per line (.jsonl, .ndjson; other extensions are sniffed: a first
// non-blank character "{" means JSONL). Fields: file (required), caption, label (integer
// >= 0), score (finite number); empty values (CSV) and nulls (JSONL) mean absent, unknown
// fields are errors. Errors name the manifest and the line.
func ReadManifest(path string) ([]ManifestEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: manifest: %w", err)
	}
	var entries []ManifestEntry
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case ext == ".csv":
		entries, err = parseManifestCSV(bytes.NewReader(b))
	case ext == ".jsonl" || ext == ".ndjson":
		entries, err = parseManifestJSONL(bytes.NewReader(b))
	case bytes.HasPrefix(bytes.TrimLeft(bytes.TrimPrefix(b, utf8BOM), " \t\r\n"), []byte("{")):
		entries, err = parseManifestJSONL(bytes.NewReader(b))
	default:
		entries, err = parseManifestCSV(bytes.NewReader(b))
	}
	if err != nil {
		return nil, fmt.Errorf("data: manifest %s: %w", path, err)
	}
	return entries, nil
}

var utf8BOM = []byte("\ufeff")

// parseManifestCSV parses a CSV manifest; errors start with "line N:".
func parseManifestCSV(r io.Reader) ([]ManifestEntry, error) {
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("line 1: empty manifest: want a header line naming the columns (file, caption, label, score)")
	}
	if err != nil {
		return nil, csvLineError(err)
	}
	col := map[string]int{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if !isManifestField(name) {
			return nil, fmt.Errorf("line 1: unknown column %q (want %s)", h, strings.Join(manifestFields, ", "))
		}
		if _, dup := col[name]; dup {
			return nil, fmt.Errorf("line 1: column %q appears twice", name)
		}
		col[name] = i
	}
	if _, ok := col["file"]; !ok {
		return nil, errors.New("line 1: no file column in the header")
	}
	var entries []ManifestEntry
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return entries, nil
		}
		if err != nil {
			return nil, csvLineError(err)
		}
		line, _ := cr.FieldPos(0)
		field := func(name string) string {
			if i, ok := col[name]; ok {
				return rec[i]
			}
			return ""
		}
		e := ManifestEntry{File: field("file"), Caption: strings.TrimSpace(field("caption")), Line: line}
		if err := e.parseNumbers(strings.TrimSpace(field("label")), strings.TrimSpace(field("score"))); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		entries = append(entries, e)
	}
}

// csvLineError rewrites an encoding/csv error as "line N: …".
func csvLineError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d: column %d: %w", pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("line 1: %w", err)
}

func isManifestField(name string) bool {
	for _, f := range manifestFields {
		if f == name {
			return true
		}
	}
	return false
}

// parseNumbers sets the label and score from their text ("" = absent).
func (e *ManifestEntry) parseNumbers(label, score string) error {
	if label != "" {
		v, err := strconv.ParseInt(label, 10, 32)
		if err != nil || v < 0 {
			return fmt.Errorf("label %q: want an integer in [0, %d]", label, math.MaxInt32)
		}
		e.Label, e.HasLabel = int32(v), true
	}
	if score != "" {
		v, err := strconv.ParseFloat(score, 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("score %q: want a finite number", score)
		}
		e.Score, e.HasScore = float32(v), true
	}
	return nil
}

// check validates the file field.
func (e *ManifestEntry) check() error {
	switch {
	case strings.TrimSpace(e.File) == "":
		return errors.New("empty file field")
	case strings.ContainsRune(e.File, 0):
		return fmt.Errorf("file %q contains a NUL byte", e.File)
	}
	return nil
}

// jsonlEntry is one JSONL manifest line; nulls and missing keys are absent values.
type jsonlEntry struct {
	File    *string         `json:"file"`
	Caption *string         `json:"caption"`
	Label   json.RawMessage `json:"label"`
	Score   json.RawMessage `json:"score"`
}

// parseManifestJSONL parses a JSON Lines manifest (blank lines skipped); errors start with
// "line N:".
func parseManifestJSONL(r io.Reader) ([]ManifestEntry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxManifestLine)
	var entries []ManifestEntry
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, utf8BOM)
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		e, err := parseJSONLEntry(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		e.Line = line
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", line+1, maxManifestLine)
		}
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return entries, nil
}

// parseJSONLEntry decodes one JSON object with the manifest keys.
func parseJSONLEntry(text []byte) (ManifestEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	var j jsonlEntry
	if err := dec.Decode(&j); err != nil {
		return ManifestEntry{}, fmt.Errorf("want a JSON object with keys %s: %w", strings.Join(manifestFields, ", "), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ManifestEntry{}, errors.New("text after the JSON object")
	}
	var e ManifestEntry
	if j.File == nil {
		return e, errors.New("no file key")
	}
	e.File = *j.File
	if j.Caption != nil {
		e.Caption = strings.TrimSpace(*j.Caption)
	}
	label, err := jsonNumberText("label", j.Label)
	if err != nil {
		return e, err
	}
	score, err := jsonNumberText("score", j.Score)
	if err != nil {
		return e, err
	}
	if err := e.parseNumbers(label, score); err != nil {
		return e, err
	}
	return e, e.check()
}

// jsonNumberText returns the literal of a JSON number ("" for a missing value or null).
func jsonNumberText(key string, raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return "", nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil || strings.HasPrefix(s, `"`) {
		return "", fmt.Errorf("%s %s: want a number or null", key, s)
	}
	return n.String(), nil
}
