package tests

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// runConcurrently runs fn times times on each of goroutines goroutines at once; a goroutine stops at
// its first error, and the test fails with it once all are done.
func runConcurrently(t *testing.T, goroutines, times int, fn func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range times {
				if errs[g] = fn(); errs[g] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}
