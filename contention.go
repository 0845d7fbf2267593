package optlock

import "sync/atomic"

// Contention remembers, across calls, that a write lately conflicted, so that [RetryLockWhenContended]
// can start the calls after it locked: the hybrid with memory that [RetryLockAfter] cannot be alone,
// made per call.
//
// Under sustained contention on a few rows nearly every optimistic first attempt loses: with
// RetryLockAfter(1) each call then pays a losing transaction before its locked one. With a
// Contention shared by the calls that write the same hot rows (one per hot operation, say, a
// package-level variable), the calls after a conflict start locked, and only one call in
// [ContendedCalls]+1 tries the optimistic path again: when it succeeds, calls stay optimistic until
// the next conflict. The zero value is ready to use and is safe for concurrent use.
type Contention struct {
	// lockedCalls is how many of the next calls start locked.
	lockedCalls atomic.Int32
}

// ContendedCalls is how many calls start locked after an optimistic attempt conflicted.
const ContendedCalls = 16

// RetryLockWhenContended is [RetryLockAfter] with memory: a call starts locked (as with k = 0) while c
// remembers a recent conflict, and optimistic otherwise, locking after its first conflict (k = 1).
// An optimistic attempt that conflicts makes the next [ContendedCalls] calls sharing c start locked.
// Everything RetryLockAfter says about which reads are locked, and where, applies. With [Transaction]
// inside the caller's transaction fn runs once: locked when c remembers a conflict, and its own
// optimistic conflict is remembered. A nil c remembers nothing: the option is then RetryLockAfter(1).
func RetryLockWhenContended(c *Contention) RetryOption {
	return func(p *retryPolicy) {
		p.lockReads, p.lockAfter, p.contention = true, 1, c
	}
}

// startsLocked takes one of the calls c has left to start locked, if any.
func (c *Contention) startsLocked() bool {
	for {
		n := c.lockedCalls.Load()
		if n <= 0 {
			return false
		}
		if c.lockedCalls.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// conflicted notes that an optimistic attempt lost: the next ContendedCalls calls start locked.
func (c *Contention) conflicted() { c.lockedCalls.Store(ContendedCalls) }
