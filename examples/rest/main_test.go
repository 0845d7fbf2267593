package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-optlock/optlock/internal/testenv"
)

const (
	clients  = 20
	hotRows  = 4
	duration = 1500 * time.Millisecond
)

// TestEndToEnd starts the service (locked, then naive) on SQLite, and on PostgreSQL when it can be
// reached, and drives it over real HTTP: the statuses of each precondition, then 20 clients doing
// read-modify-write (GET, then PATCH qty+1 with the ETag in If-Match, again from a fresh GET on 412)
// on 4 hot rows. Locked, no increment is lost and every refused PATCH is 412 with a newer ETag;
// naive, the same clients lose increments.
func TestEndToEnd(t *testing.T) {
	for _, d := range []struct{ dialect, dsn string }{
		{"sqlite", testenv.SQLiteDSN(filepath.Join(t.TempDir(), "rest.db"))},
		{"postgres", testenv.PostgresDSN()},
	} {
		t.Run(d.dialect, func(t *testing.T) {
			if d.dialect == "postgres" {
				requirePostgres(t, d.dsn)
			}
			locked := drive(t, d.dialect, d.dsn, true)
			assert.Zero(t, locked.lost, "locked: no increment lost")
			assert.Positive(t, locked.refused, "locked: some writes were refused (the rows are hot)")
			naive := drive(t, d.dialect, d.dsn, false)
			assert.Positive(t, naive.lost, "naive: the same clients lose increments")
			assert.Zero(t, naive.refused)
		})
	}
}

// requirePostgres skips (or under CI fails) when PostgreSQL cannot be reached.
func requirePostgres(t *testing.T, dsn string) {
	conn, err := sql.Open("pgx", dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = conn.PingContext(ctx)
		cancel()
		_ = conn.Close()
	}
	if err != nil {
		if testenv.Required("postgres") {
			t.Fatalf("postgres at %q unreachable: %v (required: CI=true or OPTLOCK_REQUIRE_DBS)", dsn, err)
		}
		t.Skipf("skipping postgres: %q unreachable (set OPTLOCK_POSTGRES_DSN): %v", dsn, err)
	}
}

// figures are one run's results.
type figures struct {
	accepted, refused, lost int64
}

// drive runs the service in one mode against a fresh table and checks it end to end.
func drive(t *testing.T, dialect, dsn string, locked bool) figures {
	t.Helper()
	db, cleanup, err := open(dialect, dsn, locked)
	require.NoError(t, err)
	t.Cleanup(cleanup)
	require.NoError(t, db.Migrator().DropTable(&Item{}))
	require.NoError(t, db.AutoMigrate(&Item{}))
	t.Cleanup(func() { _ = db.Migrator().DropTable(&Item{}) })
	srv := httptest.NewServer(newServer(db, locked))
	t.Cleanup(srv.Close)
	c := client{t: t, base: srv.URL, http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}}

	for id := 1; id <= hotRows; id++ {
		res := c.do("PUT", id, map[string]string{"If-None-Match": "*"}, `{"name":"hot","qty":0}`)
		require.Equal(t, http.StatusCreated, res.status, res.body)
		if locked {
			require.Equal(t, `"1"`, res.etag, "a new item of a guarded model starts at version 1")
		}
	}
	res := c.do("PUT", 1, map[string]string{"If-None-Match": "*"}, `{"name":"again","qty":0}`)
	require.Equal(t, http.StatusPreconditionFailed, res.status, "create-only PUT of an existing item: %s", res.body)
	require.Equal(t, http.StatusNotFound, c.do("GET", 999, nil, "").status, "a never-existing item")
	if locked {
		checkPreconditions(t, c)
	}

	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(duration)
	for n := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				id := 1 + (n+i)%hotRows
				got := c.do("GET", id, nil, "")
				if got.status != http.StatusOK {
					t.Errorf("GET %d: %d %s", id, got.status, got.body)
					return
				}
				var item Item
				if err := json.Unmarshal([]byte(got.body), &item); err != nil {
					t.Errorf("GET %d: %v", id, err)
					return
				}
				put := c.do("PATCH", id, map[string]string{"If-Match": got.etag}, fmt.Sprintf(`{"qty":%d}`, item.Qty+1))
				switch {
				case put.status == http.StatusOK:
					accepted.Add(1)
				case put.status == http.StatusPreconditionFailed && locked:
					refused.Add(1)
					if put.etag == "" || put.etag == got.etag || !strings.Contains(put.body, `"conflicts"`) {
						t.Errorf("a refused PATCH must carry the current ETag: sent %s, got %q, %s", got.etag, put.etag, put.body)
					}
				default:
					t.Errorf("PATCH %d: %d %s", id, put.status, put.body)
					return
				}
			}
		}()
	}
	wg.Wait()
	var total int64
	for id := 1; id <= hotRows; id++ {
		var item Item
		require.NoError(t, json.Unmarshal([]byte(c.do("GET", id, nil, "").body), &item))
		total += int64(item.Qty)
	}
	f := figures{accepted: accepted.Load(), refused: refused.Load(), lost: accepted.Load() - total}
	mode := "naive"
	if locked {
		mode = "locked"
	}
	t.Logf("%s, %s: %d clients on %d rows for %v: %d PATCHes accepted, %d refused with 412 and the current ETag, sum of qty %d: %d increments lost",
		dialect, mode, clients, hotRows, duration, f.accepted, f.refused, total, f.lost)
	return f
}

// checkPreconditions checks the statuses of the locked service around one item, then deletes it
// and makes it again.
func checkPreconditions(t *testing.T, c client) {
	t.Helper()
	for _, method := range []string{"PUT", "PATCH", "DELETE"} {
		res := c.do(method, 1, nil, `{"qty":1}`)
		assert.Equal(t, http.StatusPreconditionRequired, res.status, "%s without If-Match: %s", method, res.body)
		assert.Contains(t, res.header.Get("Content-Type"), "application/problem+json")
	}
	res := c.do("PATCH", 999, map[string]string{"If-Match": `"1"`}, `{"qty":1}`)
	assert.Equal(t, http.StatusPreconditionFailed, res.status, "If-Match on a never-existing item")
	res = c.do("PUT", 999, map[string]string{"If-Match": `"0"`}, `{"qty":1}`)
	assert.Equal(t, http.StatusPreconditionFailed, res.status, `PUT If-Match "0" never inserts`)
	assert.Equal(t, http.StatusNotFound, c.do("GET", 999, nil, "").status, "still not there")
	assert.Equal(t, http.StatusBadRequest, c.do("PATCH", 1, map[string]string{"If-Match": `"1`}, `{"qty":1}`).status, "a malformed If-Match")
	assert.Equal(t, http.StatusNotModified, c.do("GET", 1, map[string]string{"If-None-Match": `"1"`}, "").status, "If-None-Match with the current tag")

	res = c.do("PUT", 1, map[string]string{"If-Match": `"1"`}, `{"name":"hot","qty":0,"version":42}`)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Equal(t, `"2"`, res.etag, "the body's version is ignored")
	stale := c.do("DELETE", 1, map[string]string{"If-Match": `"1"`}, "")
	assert.Equal(t, http.StatusPreconditionFailed, stale.status)
	assert.Equal(t, `"2"`, stale.etag)
	assert.Equal(t, http.StatusNoContent, c.do("DELETE", 1, map[string]string{"If-Match": `"2"`}, "").status)
	assert.Equal(t, http.StatusNotFound, c.do("GET", 1, nil, "").status)
	assert.Equal(t, http.StatusPreconditionFailed, c.do("PATCH", 1, map[string]string{"If-Match": `"2"`}, `{"qty":1}`).status, "a deleted item")
	res = c.do("PUT", 1, map[string]string{"If-None-Match": "*"}, `{"name":"hot","qty":0}`)
	require.Equal(t, http.StatusCreated, res.status, res.body)
}

// client sends requests to the service over HTTP.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

// response is what the service answered.
type response struct {
	status int
	etag   string
	body   string
	header http.Header
}

func (c client) do(method string, id int, header map[string]string, body string) response {
	req, err := http.NewRequest(method, fmt.Sprintf("%s/items/%d", c.base, id), strings.NewReader(body))
	if err != nil {
		c.t.Errorf("%s: %v", method, err)
		return response{}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Errorf("%s %d: %v", method, id, err)
		return response{}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, etag: res.Header.Get("ETag"), body: string(b), header: res.Header}
}
