package data

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressReport shows a Writer's progress: a progress bar on a terminal, else a plain line
// at each quarter of the expected total (or every 10 s when the total is unknown), so that
// logs do not fill with carriage returns. A nil *progressReport is silent.
type progressReport struct {
	bar            *progressbar.ProgressBar
	w              io.Writer
	total, n       int
	printed        int // rows at the last plain line
	start, lastOut time.Time
}

func newProgressReport(w io.Writer, total int) *progressReport {
	if w == nil {
		return nil
	}
	p := &progressReport{w: w, total: total, start: time.Now()}
	p.lastOut = p.start
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		max := int64(total)
		if total <= 0 {
			max = -1 // spinner
		}
		p.bar = progressbar.NewOptions64(max, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("writing rows"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	}
	return p
}

func (p *progressReport) add(n int) {
	if p == nil {
		return
	}
	p.n += n
	if p.bar != nil {
		p.bar.Add(n)
		return
	}
	if p.total > 0 {
		if quarter := 4 * p.n / p.total; quarter > 4*p.printed/p.total {
			p.line()
		}
	} else if time.Since(p.lastOut) >= 10*time.Second {
		p.line()
	}
}

func (p *progressReport) line() {
	p.printed, p.lastOut = p.n, time.Now()
	elapsed := time.Since(p.start).Seconds()
	if p.total > 0 {
		fmt.Fprintf(p.w, "  %3d%%  %d/%d rows  %.1fs\n", 100*p.n/p.total, p.n, p.total, elapsed)
	} else {
		fmt.Fprintf(p.w, "  %d rows  %.1fs\n", p.n, elapsed)
	}
}

// finish completes the bar, or prints the final count if the last line did not show it.
func (p *progressReport) finish() {
	if p == nil {
		return
	}
	if p.bar != nil {
		p.bar.Finish()
		return
	}
	if p.printed != p.n || p.n == 0 {
		p.line()
	}
}

// stop ends a bar without completing it (after an error).
func (p *progressReport) stop() {
	if p != nil && p.bar != nil {
		p.bar.Exit()
	}
}
