package stages

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hardstrap/hardstrap/internal/say"
)

// TextProgress prints a line per stage like kind does: a spinner while the stage runs on a
// terminal, plain lines otherwise (CI logs stay readable).
type TextProgress struct {
	W   io.Writer
	TTY bool

	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}
}

var _ Progress = (*TextProgress)(nil)

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// Start begins the stage's line.
func (p *TextProgress) Start(st Stage, _ bool) {
	if !p.TTY {
		return
	}

	p.mu.Lock()
	defer p.mu.Unlock()

	p.stop, p.done = make(chan struct{}), make(chan struct{})

	go func(stop, done chan struct{}) {
		defer close(done)

		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()

		for i := 0; ; i++ {
			fmt.Fprintf(p.W, "\r %s %s ", spinnerFrames[i%len(spinnerFrames)], st.Title())

			select {
			case <-stop:
				fmt.Fprint(p.W, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}(p.stop, p.done)
}

// Done ends the stage's line with ✓ or ✗.
func (p *TextProgress) Done(st Stage, r *StageReport, err error) {
	p.mu.Lock()
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	p.mu.Unlock()

	switch {
	case err != nil:
		fmt.Fprintf(p.W, " ✗ %s\n", st.Title())
	case r.Status == StatusDeferred:
		fmt.Fprintf(p.W, " • %s (after apply)\n", st.Title())
	case r.Status == StatusPlanned:
		fmt.Fprintf(p.W, " • %s: %s planned\n", st.Title(), say.Count(len(r.Items), "change"))
	case len(r.Checks) > 0:
		fmt.Fprintf(p.W, " ✓ %s (%s)\n", st.Title(), checkCounts(r.Checks))
	case r.Status == StatusUpToDate:
		fmt.Fprintf(p.W, " ✓ %s (no changes)\n", st.Title())
	default:
		fmt.Fprintf(p.W, " ✓ %s (%s)\n", st.Title(), say.Count(len(r.Items), "change"))
	}
}

func checkCounts(checks []Check) string {
	n := map[CheckStatus]int{}
	for _, c := range checks {
		n[c.Status]++
	}

	out := fmt.Sprintf("%d passed", n[Pass])
	if n[Fail] > 0 {
		out += fmt.Sprintf(", %d failed", n[Fail])
	}

	if n[Warn] > 0 {
		out += fmt.Sprintf(", %s", say.Count(n[Warn], "warning"))
	}

	return out
}
