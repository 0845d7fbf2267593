package tests

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// summaryOut returns where TestMain's summary line goes, and what to call once it is written.
//
// `go test` with packages named (the README's `go test ./... ./tests/...`) buffers a test binary's
// stdout and stderr and throws them away when the package passes, unless -v is given: it prints only
// "ok". So on a passing run without -v the line goes to the terminal the go command writes to: the go
// command's own standard output when the go command is this binary's parent and that output is a
// terminal, a pipe or a file it appends to (Linux: /proc/<parent>/fd/1, opened anew; not a file the
// go command writes at its own offset, `go test ... >log`, which would write over the line), else the
// controlling terminal (/dev/tty). With -v or -json, on
// failure, or when neither can be opened, it goes to stdout, which `go test` shows in those cases.
func summaryOut(code int) (io.Writer, func()) {
	if code != 0 || verbose() {
		return os.Stdout, func() {}
	}
	for _, path := range []string{goCommandStdout(), "/dev/tty"} {
		if path == "" {
			continue
		}
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			return f, func() { _ = f.Close() }
		}
	}
	return os.Stdout, func() {}
}

// verbose says whether the test binary runs with -v (or -json, which sets test.v to "test2json").
func verbose() bool {
	f := flag.Lookup("test.v")
	return f != nil && f.Value.String() != "false"
}

// goCommandStdout returns /proc/<parent>/fd/1 when the parent process is the go command and its
// standard output is a terminal, a pipe or a file opened to append; "" otherwise (another parent,
// another system, a file written at an offset).
func goCommandStdout() string {
	ppid := os.Getppid()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid))
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return ""
	}
	path := fmt.Sprintf("/proc/%d/fd/1", ppid)
	info, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if info.Mode()&(os.ModeNamedPipe|os.ModeCharDevice) != 0 || info.Mode().IsRegular() && appends(ppid) {
		return path
	}
	return ""
}

// appends says whether the parent's standard output was opened with O_APPEND (the "flags:" line of
// /proc/<pid>/fdinfo/1, in octal).
func appends(ppid int) bool {
	info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/1", ppid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(info), "\n") {
		if rest, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseInt(strings.TrimSpace(rest), 8, 64)
			return err == nil && flags&int64(os.O_APPEND) != 0
		}
	}
	return false
}
