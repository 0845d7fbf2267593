package optlock_test

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// hotAccount is shared by every withdrawal from the hot account: it remembers that one conflicted.
var hotAccount optlock.Contention

func ExampleRetryLockWhenContended() {
	db, done := exampleDB()
	defer done()

	withdraw := func(amount int, interfere bool) {
		attempt := 0
		err := optlock.Transaction(context.Background(), db, func(tx *gorm.DB) error {
			attempt++
			fmt.Printf("  attempt %d locks its reads: %v\n", attempt, optlock.LocksReads(tx.Statement.Context))
			var acc Account
			if err := tx.First(&acc, "owner = ?", "cy").Error; err != nil {
				return err
			}
			if interfere && attempt == 1 {
				// Stands in for another writer getting in between the read and the write.
				tx.Scopes(optlock.Unchecked()).Model(&Account{ID: acc.ID}).Update("balance", acc.Balance)
			}
			return optlock.UpdateSafely(tx, &acc, map[string]any{"balance": acc.Balance - amount}).Error
		}, optlock.RetryLockWhenContended(&hotAccount))
		fmt.Println("  error:", err)
	}
	fmt.Println("a quiet withdrawal:")
	withdraw(5, false)
	fmt.Println("one that conflicts:")
	withdraw(5, true)
	fmt.Println("the next one starts locked:")
	withdraw(5, false)
	// Output:
	// a quiet withdrawal:
	//   attempt 1 locks its reads: false
	//   error: <nil>
	// one that conflicts:
	//   attempt 1 locks its reads: false
	//   attempt 2 locks its reads: true
	//   error: <nil>
	// the next one starts locked:
	//   attempt 1 locks its reads: true
	//   error: <nil>
}
