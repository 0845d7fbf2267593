package optlock_test

import (
	"context"
	"fmt"

	"github.com/go-optlock/optlock"
)

type requestIDKey struct{}

func ExampleRetryNotifyContext() {
	ctx := context.WithValue(context.Background(), requestIDKey{}, "req-42")
	attempts := 0
	err := optlock.Retry(ctx, func(ctx context.Context) error {
		attempts++
		if attempts < 3 {
			return &optlock.OptimisticLockError{Table: "accounts", ConflictIDs: []any{7}}
		}
		return nil
	}, optlock.RetryBackoff(0, 0), optlock.RetryNotifyContext(func(ctx context.Context, attempt int, err error) {
		fmt.Printf("%s: attempt %d: %v\n", ctx.Value(requestIDKey{}), attempt, err)
	}))
	fmt.Println("err:", err)
	// Output:
	// req-42: attempt 1: optlock: row 7 of table "accounts" was changed or deleted since it was read; nothing was written: re-read it and retry
	// req-42: attempt 2: optlock: row 7 of table "accounts" was changed or deleted since it was read; nothing was written: re-read it and retry
	// err: <nil>
}
