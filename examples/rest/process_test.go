package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-optlock/optlock/internal/testenv"
)

// childArgs is set in the environment of the test binary started as the service itself.
const childArgs = "OPTLOCK_REST_ARGS"

// TestMain runs the service's own main, with the arguments in OPTLOCK_REST_ARGS, when the test binary
// is started as the service by TestProcessServes.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(childArgs); ok {
		os.Args = append([]string{"rest"}, strings.Fields(args)...)
		main()
		return
	}
	os.Exit(m.Run())
}

// TestProcessServes starts the service as a process of its own, through main and its flags, on a
// free port, and checks the flow a client sees over real HTTP: 404 for an item never created, a
// create-only PUT, the ETag of a GET, a PATCH with it, the same stale PATCH refused with 412 and the
// current ETag, 428 without If-Match. Then an interrupt shuts it down cleanly (exit status 0).
func TestProcessServes(t *testing.T) {
	addr := freeAddr(t)
	dsn := testenv.SQLiteDSN(filepath.Join(t.TempDir(), "process.db"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childArgs+"=-dialect sqlite -addr "+addr+" -dsn "+dsn)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // a no-op once it exited
	})

	c := client{t: t, base: "http://" + addr, http: &http.Client{Timeout: 5 * time.Second}}
	waitUntilServing(t, c, exited)
	assert.Equal(t, http.StatusNotFound, c.do(http.MethodGet, 7, nil, "").status)
	assert.Equal(t, http.StatusCreated, c.do(http.MethodPut, 7, map[string]string{"If-None-Match": "*"}, `{"name":"pen","qty":1}`).status)
	read := c.do(http.MethodGet, 7, nil, "")
	require.Equal(t, http.StatusOK, read.status)
	require.NotEmpty(t, read.etag)
	first := c.do(http.MethodPatch, 7, map[string]string{"If-Match": read.etag}, `{"qty":2}`)
	require.Equal(t, http.StatusOK, first.status)
	stale := c.do(http.MethodPatch, 7, map[string]string{"If-Match": read.etag}, `{"qty":3}`)
	assert.Equal(t, http.StatusPreconditionFailed, stale.status)
	assert.Equal(t, first.etag, stale.etag, "the refusal carries the current ETag")
	assert.Equal(t, http.StatusPreconditionRequired, c.do(http.MethodPatch, 7, nil, `{"qty":4}`).status)

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-exited:
		assert.NoError(t, err, "the service exits cleanly on an interrupt")
	case <-time.After(15 * time.Second):
		t.Fatal("the service did not exit within 15 s of an interrupt")
	}
}

// freeAddr returns a loopback address no one listens on just now.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// waitUntilServing waits until the service answers, failing if it exits first or takes over 60 s
// (the first build of SQLite is not counted: the binary is built already).
func waitUntilServing(t *testing.T, c client, exited <-chan error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("the service exited before serving: %v", err)
		default:
		}
		if resp, err := c.http.Get(c.base + "/items/1"); err == nil {
			_ = resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the service did not answer within 60 s")
}
