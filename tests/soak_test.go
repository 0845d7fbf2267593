package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

const (
	soakProcesses  = 4
	soakGoroutines = 8
	soakRows       = 6
	soakEnv        = "OPTLOCK_SOAK_CHILD"
)

// soakReport is what one soak process did.
type soakReport struct {
	Increments map[uint]int64 // successful increments per row
	Operations int64
	Conflicts  int64
	Retries    int64
	Failures   []string // anything but success or conflict
}

// Four processes of eight goroutines each increment single hot rows and bulk-update all of them,
// with retries, for a bounded time. Every counter must end equal to the increments reported.
func TestSoakManyProcessesLoseNoUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	if os.Getenv(soakEnv) != "" || os.Getenv(childEnv) != "" {
		t.Skip("in a child process")
	}
	duration := 5 * time.Second
	if d, err := time.ParseDuration(os.Getenv("OPTLOCK_SOAK_DURATION")); err == nil {
		duration = d
	}
	for _, d := range dialects {
		if d.name == "sqlite" {
			continue // the servers are the point: separate processes, separate connections
		}
		t.Run(d.name, func(t *testing.T) {
			db := openDB(t, d, []any{&Counter{}})
			rows := make([]Counter, soakRows)
			for i := range rows {
				rows[i] = Counter{Version: 1}
			}
			require.NoError(t, db.Create(&rows).Error)

			var wg sync.WaitGroup
			reports := make([]soakReport, soakProcesses)
			for p := range soakProcesses {
				cmd := exec.Command(os.Args[0], "-test.run=^TestSoakChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), soakEnv+"="+d.name, "OPTLOCK_SOAK_DURATION="+duration.String())
				cmd.Stderr = os.Stderr
				out, err := cmd.StdoutPipe()
				require.NoError(t, err)
				require.NoError(t, cmd.Start())
				wg.Add(1)
				go func() {
					defer wg.Done()
					lines := bufio.NewScanner(out)
					lines.Buffer(make([]byte, 1<<20), 1<<20)
					for lines.Scan() {
						if js, ok := strings.CutPrefix(lines.Text(), "soak: "); ok {
							_ = json.Unmarshal([]byte(js), &reports[p])
						}
					}
					_ = cmd.Wait()
				}()
			}
			wg.Wait()

			var total soakReport
			total.Increments = map[uint]int64{}
			for _, r := range reports {
				require.Empty(t, r.Failures, "calls that ended in neither success nor conflict")
				require.NotZero(t, r.Operations, "a process reported nothing")
				for id, n := range r.Increments {
					total.Increments[id] += n
				}
				total.Operations += r.Operations
				total.Conflicts += r.Conflicts
				total.Retries += r.Retries
			}
			var stored []Counter
			require.NoError(t, db.Order("id").Find(&stored).Error)
			lost := int64(0)
			for _, c := range stored {
				assert.EqualValues(t, total.Increments[c.ID], c.Value, "row %d", c.ID)
				lost += total.Increments[c.ID] - int64(c.Value)
			}
			t.Logf("%s soak: %d processes x %d goroutines for %s: %d operations, %d conflicts, %d retries, %d lost updates",
				d.name, soakProcesses, soakGoroutines, duration, total.Operations, total.Conflicts, total.Retries, lost)
		})
	}
}

// TestSoakChild is one process of TestSoakManyProcessesLoseNoUpdate.
func TestSoakChild(t *testing.T) {
	name := os.Getenv(soakEnv)
	if name == "" {
		t.Skip("runs only as a child of TestSoakManyProcessesLoseNoUpdate")
	}
	duration, err := time.ParseDuration(os.Getenv("OPTLOCK_SOAK_DURATION"))
	require.NoError(t, err)
	var db *gorm.DB
	for _, d := range dialects {
		if d.name == name {
			db, err = d.open(t)
		}
	}
	require.NoError(t, err)
	require.NoError(t, db.Use(optlock.New()))
	var ids []uint
	require.NoError(t, db.Model(&Counter{}).Order("id").Pluck("id", &ids).Error)

	var mu sync.Mutex
	report := soakReport{Increments: map[uint]int64{}}
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for range soakGoroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				bulk := rand.IntN(4) == 0
				target := ids[rand.IntN(len(ids))]
				conflicts := int64(0)
				err := optlock.Retry(context.Background(), func(ctx context.Context) error {
					var rows []Counter
					q := db.WithContext(ctx).Order("id")
					if !bulk {
						q = q.Where("id = ?", target)
					}
					if err := q.Find(&rows).Error; err != nil {
						return err
					}
					err := optlock.UpdateSafely(db.WithContext(ctx), &rows, map[string]any{"value": gorm.Expr("value + 1")}).Error
					if errors.Is(err, optlock.ErrConflict) {
						conflicts++
					}
					return err
				}, optlock.RetryAttempts(10_000))
				mu.Lock()
				report.Operations++
				report.Conflicts += conflicts
				report.Retries += conflicts
				if err != nil {
					report.Failures = append(report.Failures, err.Error())
				} else if bulk {
					for _, id := range ids {
						report.Increments[id]++
					}
				} else {
					report.Increments[target]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	js, err := json.Marshal(report)
	require.NoError(t, err)
	fmt.Printf("soak: %s\n", js)
}
