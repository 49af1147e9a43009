package data

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestParseManifestCSV(t *testing.T) {
	in := "\ufeffFile, caption ,label,score\n" +
		"a.png,a red square,1,0.5\n" +
		"\n" +
		"\"dir/b c.jpg\",\"quoted, with comma\",,\n" +
		"c.png,,0,-2e-1\n"
	got, err := parseManifestCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []ManifestEntry{
		{File: "a.png", Caption: "a red square", Label: 1, HasLabel: true, Score: 0.5, HasScore: true, Line: 2},
		{File: "dir/b c.jpg", Caption: "quoted, with comma", Line: 4},
		{File: "c.png", Label: 0, HasLabel: true, Score: -0.2, HasScore: true, Line: 5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries: %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	only, err := parseManifestCSV(strings.NewReader("file\nx.png\n"))
	if err != nil || len(only) != 1 || only[0].File != "x.png" || only[0].HasLabel {
		t.Errorf("file-only manifest: %+v, %v", only, err)
	}
}

func TestParseManifestCSVErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "line 1: empty manifest"},
		{"caption\nhello\n", "line 1: no file column"},
		{"file,captoin\n", `line 1: unknown column "captoin"`},
		{"file,File\n", `line 1: column "file" appears twice`},
		{"file,label\na.png,1\nb.png,x\n", `line 3: label "x"`},
		{"file,label\na.png,-1\n", `line 2: label "-1"`},
		{"file,label\na.png,3000000000\n", "line 2: label"},
		{"file,score\na.png,NaN\n", `line 2: score "NaN"`},
		{"file,score\n\na.png,inf\n", `line 3: score "inf"`},
		{"file,caption\na.png\n", "line 2: column 1: wrong number of fields"},
		{"file\n\"a.png\n", "line 2"},
		{"file,caption\n  ,x\n", "line 2: empty file field"},
	} {
		_, err := parseManifestCSV(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestParseManifestJSONL(t *testing.T) {
	in := "\ufeff{\"file\": \"a.png\", \"caption\": \" a cat \", \"label\": 2, \"score\": 1.5}\n" +
		"\r\n" +
		"{\"file\": \"b.jpg\", \"label\": null, \"score\": null, \"caption\": null}\r\n" +
		"{\"FILE\": \"c.png\"}"
	got, err := parseManifestJSONL(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []ManifestEntry{
		{File: "a.png", Caption: "a cat", Label: 2, HasLabel: true, Score: 1.5, HasScore: true, Line: 1},
		{File: "b.jpg", Line: 3},
		{File: "c.png", Line: 4},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got, err := parseManifestJSONL(strings.NewReader("\n \n")); err != nil || len(got) != 0 {
		t.Errorf("blank manifest: %v, %v", got, err)
	}
}

func TestParseManifestJSONLErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"caption": "x"}`, "line 1: no file key"},
		{"{\"file\": \"a.png\"}\n{\"file\": \"b.png\", \"lable\": 1}", `line 2: want a JSON object`},
		{`{"file": "a.png", "label": 1.5}`, `line 1: label "1.5"`},
		{`{"file": "a.png", "label": "1"}`, `line 1: label "1": want a number or null`},
		{`{"file": "a.png", "score": "high"}`, "line 1: score"},
		{`{"file": 3}`, "line 1: want a JSON object"},
		{`["a.png"]`, "line 1: want a JSON object"},
		{`{"file": "a.png"} {"file": "b.png"}`, "line 1: text after the JSON object"},
		{`{"file": "a.png"`, "line 1"},
		{"\n\n{\"file\": \"\"}", "line 3: empty file field"},
		{`{"file": "a.png", "label": -4}`, `line 1: label "-4"`},
		{"{\"file\": \"" + strings.Repeat("x", maxManifestLine) + "\"}", "line 1: longer than"},
	} {
		_, err := parseManifestJSONL(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60q: err = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestReadManifestFormats(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"m.csv":   "file,caption\na.png,x\n",
		"m.jsonl": `{"file": "a.png", "caption": "x"}`,
		"m.txt":   ` {"file": "a.png", "caption": "x"}`, // sniffed as JSONL
		"m2.txt":  "file,caption\na.png,x\n",            // sniffed as CSV
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		got, err := ReadManifest(p)
		if err != nil || len(got) != 1 || got[0].File != "a.png" || got[0].Caption != "x" {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("file,label\na.png,zz\n"), 0o644)
	if _, err := ReadManifest(bad); err == nil || !strings.Contains(err.Error(), bad+": line 2") {
		t.Errorf("error does not name the manifest and line: %v", err)
	}
}

// lineErr matches the "line N:" every manifest parse error must carry.
var lineErr = regexp.MustCompile(`(^|: )line [1-9][0-9]*: `)

func FuzzManifestCSV(f *testing.F) {
	for _, s := range []string{
		"file,caption,label,score\na.png,hi,1,0.5\n",
		"file\nx.jpg\n",
		"\ufefffile,label\n\"q\"\"uote.png\",3\n",
		"file,caption\na.png\n",
		"file,score\na.png,1e999\n",
		"",
		"caption\n",
		"file\n\"unterminated\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseManifestCSV(strings.NewReader(string(b)))
		if err != nil {
			if !lineErr.MatchString(err.Error()) {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		for _, e := range entries {
			if strings.TrimSpace(e.File) == "" || e.Line < 2 || (e.HasLabel && e.Label < 0) {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

func FuzzManifestJSONL(f *testing.F) {
	for _, s := range []string{
		`{"file": "a.png", "caption": "hi", "label": 1, "score": 0.5}`,
		"{\"file\": \"a.png\"}\n\n{\"file\": \"b.png\", \"label\": null}\r\n",
		`{"file": "a.png", "label": 1e3}`,
		`{"file": "a.png", "extra": 1}`,
		`{"file": "a.png"} x`,
		`[]`,
		"",
		"\ufeff{\"file\":\"\u00e9.png\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseManifestJSONL(strings.NewReader(string(b)))
		if err != nil {
			if !lineErr.MatchString(err.Error()) {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		for _, e := range entries {
			if strings.TrimSpace(e.File) == "" || e.Line < 1 || (e.HasLabel && e.Label < 0) {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}
