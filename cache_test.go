package optlock

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestLRUForgetsTheLeastRecentlyUsed: the cache never holds more than its size.
func TestLRUForgetsTheLeastRecentlyUsed(t *testing.T) {
	c := lru[string, int]{max: 3}
	for i, k := range []string{"a", "b", "c"} {
		c.add(k, i, 0)
	}
	_, _ = c.get("a") // a is now the most recently used
	c.add("d", 3, 0)
	assert.Equal(t, 3, c.len())
	_, hasB := c.get("b")
	assert.False(t, hasB, "b, the least recently used, is forgotten")
	for _, k := range []string{"a", "c", "d"} {
		_, ok := c.get(k)
		assert.True(t, ok, "%s kept", k)
	}
	for i := range 1000 {
		c.add(string(rune('e'+i)), i, 0)
	}
	assert.Equal(t, 3, c.len())
	assert.Equal(t, 7, c.add("d2", 7, 0), "add returns what it stored")
	assert.Equal(t, 7, c.add("d2", 8, 0), "an earlier value wins")
}

// TestColumnCacheReadsOnce: concurrent first reads of one table run the read once (pinned readers
// wait for a pinned read); a failed read is not cached.
func TestColumnCacheReadsOnce(t *testing.T) {
	var c columnCache
	key := tableKey{dialect: "postgres", table: "t"}
	var reads atomic.Int64
	release := make(chan struct{})
	read := func() *tableColumns {
		reads.Add(1)
		<-release
		return &tableColumns{byName: map[string]storedColumn{"id": {typeName: "int8"}}}
	}
	var wg sync.WaitGroup
	got := make([]*tableColumns, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = c.get(context.Background(), key, true, read)
		}()
	}
	for c.loadingCount() == 0 {
	}
	close(release)
	wg.Wait()
	assert.EqualValues(t, 1, reads.Load())
	for _, g := range got {
		assert.Same(t, got[0], g)
	}

	failed := tableKey{dialect: "postgres", table: "u"}
	assert.Nil(t, c.get(context.Background(), failed, true, func() *tableColumns { return nil }))
	_, cached := c.tables.get(failed)
	assert.False(t, cached, "a failed read is tried again")
}

func (c *columnCache) loadingCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.loading)
}
