package experiment

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gorch/gorch/internal/testutil"
)

// TestS3CreateBucketRace: processes that start together with
// CreateBucket all open the store, whichever of them creates the bucket
// (a create that finds the bucket just made is not an error).
func TestS3CreateBucketRace(t *testing.T) {
	gw := testutil.StartVersityGW(t)
	for round := range 5 {
		bucket := fmt.Sprintf("gorch-race-%d", round)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = NewS3Store(context.Background(), S3Config{Endpoint: gw.Endpoint, Bucket: bucket,
					AccessKey: gw.AccessKey, SecretKey: gw.SecretKey, Insecure: true, CreateBucket: true})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, opener %d: NewS3Store = %v; want the bucket created by one and found by the others", round, i, err)
			}
		}
	}
}
