package tests

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

const writers = 5

// Five goroutines read the same row before any of them writes, then all write: exactly one wins,
// and the other four are told that row conflicted.
func TestConcurrentWritersFromOneSnapshotExactlyOneWins(t *testing.T) {
	eachDB(t, []any{&Counter{}}, func(t *testing.T, db *gorm.DB) {
		counter := Counter{Value: 0, Version: 1}
		require.NoError(t, db.Create(&counter).Error)

		var allRead, start sync.WaitGroup
		allRead.Add(writers)
		start.Add(1)
		errs := make([]error, writers)
		var done sync.WaitGroup
		for w := range writers {
			done.Add(1)
			go func() {
				defer done.Done()
				var mine Counter
				err := db.First(&mine, counter.ID).Error
				allRead.Done()
				start.Wait()
				if err == nil {
					err = optlock.UpdateSafely(db, &mine, map[string]any{"value": w + 1}).Error
				}
				errs[w] = err
			}()
		}
		allRead.Wait()
		start.Done()
		done.Wait()

		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			requireConflict(t, err, counter.ID)
		}
		assert.Equal(t, 1, wins)
		var stored Counter
		require.NoError(t, db.First(&stored, counter.ID).Error)
		assert.Equal(t, 2, stored.Version)
	})
}

// The same race on a bulk write of twenty rows: one writer writes all of them, the others none.
func TestConcurrentBulkWritersExactlyOneWins(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		seeded := seedItems(t, db, 20)
		var allRead, start, done sync.WaitGroup
		allRead.Add(writers)
		start.Add(1)
		errs := make([]error, writers)
		for w := range writers {
			done.Add(1)
			go func() {
				defer done.Done()
				mine := append([]Item(nil), seeded...)
				allRead.Done()
				start.Wait()
				errs[w] = optlock.UpdateSafely(db, &mine, map[string]any{"qty": w}).Error
			}()
		}
		allRead.Wait()
		start.Done()
		done.Wait()

		wins, winner := 0, -1
		for w, err := range errs {
			if err == nil {
				wins, winner = wins+1, w
				continue
			}
			require.ErrorIs(t, err, optlock.ErrConflict)
			var lockErr *optlock.OptimisticLockError
			require.ErrorAs(t, err, &lockErr)
			assert.Len(t, lockErr.ConflictIDs, len(seeded), "every row changed under the losers")
		}
		require.Equal(t, 1, wins)
		for _, it := range loadItems(t, db) {
			assert.Equal(t, winner, it.Qty, "all rows hold the winner's write")
			assert.EqualValues(t, 2, it.Version)
		}
	})
}

// Goroutines that retry on conflict lose no increment.
func TestNoLostUpdatesWithRetry(t *testing.T) {
	const goroutines, increments = 8, 25
	eachDB(t, []any{&Counter{}}, func(t *testing.T, db *gorm.DB) {
		counter := Counter{Version: 1}
		require.NoError(t, db.Create(&counter).Error)

		var conflicts sync.Map
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range increments {
					for attempt := 0; ; attempt++ {
						var c Counter
						if err := db.First(&c, counter.ID).Error; err != nil {
							errs <- err
							return
						}
						err := optlock.UpdateSafely(db, &c, map[string]any{"value": c.Value + 1}).Error
						if err == nil {
							break
						}
						if !errors.Is(err, optlock.ErrConflict) {
							errs <- err
							return
						}
						n, _ := conflicts.LoadOrStore(g, new(int))
						*n.(*int)++
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		var stored Counter
		require.NoError(t, db.First(&stored, counter.ID).Error)
		assert.Equal(t, goroutines*increments, stored.Value, "no lost update")
		assert.Equal(t, 1+goroutines*increments, stored.Version)
		total := 0
		conflicts.Range(func(_, n any) bool { total += *n.(*int); return true })
		t.Logf("%d increments, %d conflicts retried", goroutines*increments, total)
	})
}

// Five separate processes, each with its own connection, read the row, wait until all have read,
// then write: exactly one succeeds.
func TestConcurrentProcessesExactlyOneWins(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in a child process")
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			db := openDB(t, d, []any{&Counter{}})
			counter := Counter{Version: 1}
			require.NoError(t, db.Create(&counter).Error)
			sqlitePath := ""
			if d.name == "sqlite" {
				sqlitePath = sqliteFile(t, db)
			}

			type child struct {
				cmd   *exec.Cmd
				stdin io.WriteCloser
				lines *bufio.Scanner
			}
			children := make([]child, writers)
			for i := range children {
				cmd := exec.Command(os.Args[0], "-test.run=^TestChildWriter$", "-test.count=1")
				cmd.Env = append(os.Environ(),
					childEnv+"="+d.name,
					fmt.Sprintf("OPTLOCK_CHILD_ROW=%d", counter.ID),
					fmt.Sprintf("OPTLOCK_CHILD_VALUE=%d", i+1),
					"OPTLOCK_CHILD_SQLITE="+sqlitePath)
				stdin, err := cmd.StdinPipe()
				require.NoError(t, err)
				stdout, err := cmd.StdoutPipe()
				require.NoError(t, err)
				cmd.Stderr = os.Stderr
				require.NoError(t, cmd.Start())
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				children[i] = child{cmd, stdin, bufio.NewScanner(stdout)}
			}
			for i, c := range children {
				require.Equal(t, "ready", readTagged(c.lines), "child %d did not read the row", i)
			}
			for _, c := range children {
				_, err := io.WriteString(c.stdin, "go\n")
				require.NoError(t, err)
			}
			results := map[string]int{}
			for _, c := range children {
				results[readTagged(c.lines)]++
			}
			assert.Equal(t, map[string]int{"ok": 1, fmt.Sprintf("conflict [%d]", counter.ID): writers - 1}, results)
			var stored Counter
			require.NoError(t, db.First(&stored, counter.ID).Error)
			assert.Equal(t, 2, stored.Version)
		})
	}
}

const childEnv = "OPTLOCK_CHILD_DIALECT"

// readTagged returns the next line the child marked as its own (test output may interleave).
func readTagged(lines *bufio.Scanner) string {
	for lines.Scan() {
		if line, ok := strings.CutPrefix(lines.Text(), "child: "); ok {
			return line
		}
	}
	return "eof"
}

// TestChildWriter is the body of one writer process of TestConcurrentProcessesExactlyOneWins.
func TestChildWriter(t *testing.T) {
	name := os.Getenv(childEnv)
	if name == "" {
		t.Skip("runs only as a child of TestConcurrentProcessesExactlyOneWins")
	}
	var db *gorm.DB
	var err error
	if name == "sqlite" {
		db, err = openSQLiteFile(os.Getenv("OPTLOCK_CHILD_SQLITE"))
	} else {
		for _, d := range dialects {
			if d.name == name {
				db, err = d.open(t)
			}
		}
	}
	require.NoError(t, err)
	require.NoError(t, db.Use(optlock.New()))

	var mine Counter
	require.NoError(t, db.First(&mine, os.Getenv("OPTLOCK_CHILD_ROW")).Error)
	fmt.Println("child: ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')

	err = optlock.UpdateSafely(db, &mine, map[string]any{"value": os.Getenv("OPTLOCK_CHILD_VALUE")}).Error
	var lockErr *optlock.OptimisticLockError
	switch {
	case err == nil:
		fmt.Println("child: ok")
	case errors.As(err, &lockErr):
		fmt.Printf("child: conflict %v\n", lockErr.ConflictIDs)
	default:
		fmt.Printf("child: error %v\n", err)
	}
}

// sqliteFile returns the path of the file behind a SQLite *gorm.DB.
func sqliteFile(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var seq int
	var name, file string
	require.NoError(t, db.Raw("PRAGMA database_list").Row().Scan(&seq, &name, &file))
	require.NotEmpty(t, file)
	return filepath.Clean(file)
}
