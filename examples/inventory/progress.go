package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// progressWidth is the widest a progress frame gets: it never wraps on a 50-column terminal (the
// cursor stays in the last column instead of moving to a new line).
const progressWidth = 49

// progress redraws a status line on a terminal. On anything else (a file, a pipe, a test's buffer)
// it writes nothing, so logs get no carriage-return frames.
type progress struct {
	w   io.Writer
	tty bool
}

// isTerminal reports whether f is a character device, such as a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// show redraws line every 100ms until the returned stop is called, which clears the line.
func (p progress) show(line func() string) (stop func()) {
	if !p.tty || p.w == nil {
		return func() {}
	}
	done, drawn := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drawn)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			fmt.Fprint(p.w, "\r"+frame(line()))
			select {
			case <-done:
				fmt.Fprint(p.w, "\r"+strings.Repeat(" ", progressWidth)+"\r")
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		<-drawn
	}
}

// frame clips s to progressWidth columns and pads it, so a shorter frame hides a longer one.
func frame(s string) string {
	if n := utf8.RuneCountInString(s); n < progressWidth {
		return s + strings.Repeat(" ", progressWidth-n)
	}
	return string([]rune(s)[:progressWidth])
}
