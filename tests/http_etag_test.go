package tests

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock/internal/testenv"
	"github.com/go-optlock/optlock/optlockhttp"
)

// TestHTTPCompositeKeyAndSeveralLockFields: a row with a two-column key, guarded on a version and an
// updated_at, has one tag carrying both values; a write with it succeeds and gives the next tag; a
// stale tag (either value old) is 412 with the current tag, naming the composite key; nothing written.
func TestHTTPCompositeKeyAndSeveralLockFields(t *testing.T) {
	eachHTTPDB(t, func(t *testing.T, c configured) {
		at := time.Date(2026, 3, 1, 12, 34, 56, 789_000_000, time.UTC)
		require.NoError(t, c.observer.Create(&HttpPair{Tenant: "acme", Code: 7, Note: "seed", Version: 3, UpdatedAt: at}).Error)
		var read HttpPair
		require.NoError(t, c.db.First(&read, "tenant = ? AND code = ?", "acme", 7).Error)
		tag, err := optlockhttp.ETag(c.db, &read)
		require.NoError(t, err)
		assert.Equal(t, `"3/2026-03-01T12:34:56.789Z"`, tag)

		stale := []string{`"2/2026-03-01T12:34:56.789Z"`, `"3/2026-03-01T12:34:56.788Z"`}
		for _, old := range stale {
			r := request(old)
			err := c.db.Scopes(optlockhttp.IfMatch(r)).Model(&HttpPair{Tenant: "acme", Code: 7}).Update("note", "stale").Error
			conflict := requireConflict(t, err, []any{"acme", int64(7)})
			require.Len(t, conflict.Rows, 1)
			got, current := statusOf(r, err)
			assert.Equal(t, http.StatusPreconditionFailed, got)
			assert.Equal(t, tag, current, "the current tag")
		}
		var stored HttpPair
		require.NoError(t, c.observer.First(&stored, "tenant = ? AND code = ?", "acme", 7).Error)
		assert.Equal(t, "seed", stored.Note, "nothing written")

		row := HttpPair{Tenant: "acme", Code: 7, Note: "written"}
		require.NoError(t, c.db.Scopes(optlockhttp.IfMatch(request(tag))).Save(&row).Error)
		next, err := optlockhttp.ETag(c.db, &row)
		require.NoError(t, err)
		require.NoError(t, c.observer.First(&stored, "tenant = ? AND code = ?", "acme", 7).Error)
		assert.Equal(t, "written", stored.Note)
		assert.Equal(t, int64(4), stored.Version)
		reread, err := optlockhttp.ETag(c.db, &stored)
		require.NoError(t, err)
		assert.Equal(t, reread, next, "the tag of the struct written is the tag of the row re-read")
		assert.True(t, strings.HasPrefix(next, `"4/`), next)
	})
}

// httpZoneChildEnv marks a child process of TestHTTPETagSameInEveryZone.
const httpZoneChildEnv = "OPTLOCK_HTTP_ZONE_CHILD"

// etagLine is how a child reports one tag: "ETAG <database>/<column> <tag>".
var etagLine = regexp.MustCompile(`(?m)^ETAG (\S+) (\S+)$`)

// TestHTTPETagSameInEveryZone: the same stored row (version 7, updated_at 12:34:56.789 UTC) read
// through SQLite, PostgreSQL (timestamptz and timestamp without time zone, at microseconds and
// milliseconds) and MariaDB (datetime(3) and datetime(6)), in processes whose zone is east, west and at
// UTC, gives one and the same tag everywhere; so does a whole-second value in whole-second columns
// and in the default ones.
func TestHTTPETagSameInEveryZone(t *testing.T) {
	if os.Getenv(httpZoneChildEnv) != "" {
		t.Skip("a child process")
	}
	tags := map[string]map[string]string{} // value -> "zone db/column" -> tag
	for _, zone := range []string{"Asia/Shanghai", "America/New_York", "UTC"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHTTPETagZoneChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "TZ="+zone, httpZoneChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "the child in %s failed:\n%s", zone, tail(out, 6000))
		for _, m := range etagLine.FindAllStringSubmatch(string(out), -1) {
			value, where, _ := strings.Cut(m[1], ":")
			if tags[value] == nil {
				tags[value] = map[string]string{}
			}
			tags[value][zone+" "+where] = m[2]
		}
	}
	want := map[string]string{"ms": `"7/2026-03-01T12:34:56.789Z"`, "s": `"7/2026-03-01T12:34:56Z"`}
	for value, tag := range want {
		require.NotEmpty(t, tags[value], "the children reported no %s tag", value)
		var where []string
		for w, got := range tags[value] {
			assert.Equal(t, tag, got, "%s value read in %s", value, w)
			where = append(where, w)
		}
		sort.Strings(where)
		t.Logf("%s: %s from %d reads: %s", value, tag, len(where), strings.Join(where, ", "))
	}
	for _, d := range dialects {
		seen := false
		for w := range tags["ms"] {
			seen = seen || strings.Contains(w, " "+d.name+"/")
		}
		if !seen && testenv.Required(d.name) {
			t.Errorf("no tag read through %s", d.name)
		}
	}
}

// TestHTTPETagZoneChild writes and reads back the row of TestHTTPETagSameInEveryZone on every
// reachable database and column type, in the process's own zone, and prints each tag.
func TestHTTPETagZoneChild(t *testing.T) {
	if os.Getenv(httpZoneChildEnv) == "" {
		t.Skip("run by TestHTTPETagSameInEveryZone")
	}
	columns := map[string][]string{
		"sqlite":   {""},
		"postgres": {"", "timestamp(6)", "timestamptz(3)", "timestamp(3)", "timestamptz(0)"},
		"mysql":    {"", "datetime(6)", "datetime(0)"},
	}
	values := map[string]time.Time{
		"ms": time.Date(2026, 3, 1, 12, 34, 56, 789_000_000, time.UTC),
		"s":  time.Date(2026, 3, 1, 12, 34, 56, 0, time.UTC),
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			for _, column := range columns[d.name] {
				// A pool of its own per column type: pgx's cached plans and the plugin's column types
				// belong to the table as it was.
				c := openConfigured(t, d, &gorm.Config{}, httpModels, httpGuards...)
				if column != "" {
					alter := "ALTER TABLE http_pairs ALTER COLUMN updated_at TYPE " + column
					if d.name == "mysql" {
						alter = "ALTER TABLE http_pairs MODIFY updated_at " + column
					}
					require.NoError(t, c.observer.Exec(alter).Error)
				}
				for name, at := range values {
					if strings.HasSuffix(column, "(0)") && name != "s" {
						continue
					}
					require.NoError(t, c.observer.Exec("DELETE FROM http_pairs").Error)
					require.NoError(t, c.db.Create(&HttpPair{Tenant: "t", Code: 1, Version: 7, UpdatedAt: at}).Error)
					var read HttpPair
					require.NoError(t, c.db.First(&read, "tenant = ?", "t").Error)
					tag, err := optlockhttp.ETag(c.db, &read)
					require.NoError(t, err)
					where := d.name + "/" + column
					if column == "" {
						where += "default"
					}
					fmt.Printf("ETAG %s:%s %s\n", name, where, tag)
					// The tag writes the row it came from.
					require.NoError(t, c.db.Scopes(optlockhttp.IfMatch(request(tag))).Model(&HttpPair{Tenant: "t", Code: 1}).Update("note", "x").Error, "%s %s", where, tag)
				}
			}
		})
	}
}
