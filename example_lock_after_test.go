package optlock_test

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

func ExampleRetryLockAfter() {
	db, done := exampleDB()
	defer done()

	// A withdrawal from a hot account: optimistic first; after one conflict the attempt reads the
	// row with SELECT … FOR UPDATE (on PostgreSQL and MySQL; SQLite has no row locks), so the
	// writers queue on the row's lock instead of conflicting again.
	attempt := 0
	err := optlock.Transaction(context.Background(), db, func(tx *gorm.DB) error {
		attempt++
		fmt.Printf("attempt %d locks its reads: %v\n", attempt, optlock.LocksReads(tx.Statement.Context))
		var acc Account
		if err := tx.First(&acc, "owner = ?", "cy").Error; err != nil {
			return err
		}
		if attempt == 1 {
			// Stands in for another writer getting in between the read and the write.
			tx.Scopes(optlock.Unchecked()).Model(&Account{ID: acc.ID}).Update("balance", acc.Balance)
		}
		return optlock.UpdateSafely(tx, &acc, map[string]any{"balance": acc.Balance - 20}).Error
	}, optlock.RetryLockAfter(1))

	var acc Account
	db.First(&acc, "owner = ?", "cy")
	fmt.Println(err, acc.Balance, acc.Version)
	// Output:
	// attempt 1 locks its reads: false
	// attempt 2 locks its reads: true
	// <nil> 50 2
}
