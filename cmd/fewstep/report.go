package main

import (
	"fmt"
	"path/filepath"

	"github.com/fewstep/fewstep/report"
)

// cmdReport is `fewstep report RUN [RUN…] [-out FILE]`: the HTML run report (package report) of one
// run (default RUN/report.html) or several runs overlaid (default report.html here).
func cmdReport(args []string) error {
	fs := newFlagSet("report", "report RUN_DIR [RUN_DIR…] [-out report.html]")
	out := fs.String("out", "", "output file (default: RUN_DIR/report.html for one run, ./report.html for several)")
	help, runs, err := parseWithArgs(fs, args)
	if help || err != nil {
		return err
	}
	if len(runs) == 0 {
		return usagef("report: give at least one run directory")
	}
	path := *out
	if path == "" && len(runs) == 1 {
		path = filepath.Join(runs[0], "report.html")
	} else if path == "" {
		path = "report.html"
	}
	if err := writeReport(path, runs); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%d run%s)\n", path, len(runs), map[bool]string{true: "s"}[len(runs) > 1])
	return nil
}

// writeReport loads the runs and writes their report to path.
func writeReport(path string, dirs []string) error {
	var runs []report.Run
	for _, d := range dirs {
		r, err := report.Load(d)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	return report.Write(path, runs)
}
