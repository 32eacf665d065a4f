package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Vault's aws auth, ec2 type: the instance metadata service hands leash
// the instance identity document signed by AWS (PKCS#7), and Vault checks
// the signature and that the instance is running. Anyone who reads the
// document on the instance can present it, so Vault ties an instance to
// the client nonce of its first login and refuses a later login with
// another nonce (until the access-list entry expires, or with the role's
// allow_instance_migration). leash makes one nonce per process, keeps it
// in memory only and presents it at every login: a restarted leash has a
// new one, see the README.

// ec2Nonce is the client nonce of the ec2 logins of one Manager.
type ec2Nonce struct {
	mu sync.Mutex
	v  string
}

func (n *ec2Nonce) get() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.v == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		n.v = hex.EncodeToString(b)
	}
	return n.v, nil
}

// imdsEndpoint is the endpoint the SDK's IMDS client uses, for errors.
func imdsEndpoint() string {
	return firstNonEmpty(os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"), "http://169.254.169.254")
}

// awsEC2LoginData fetches the PKCS#7 signed identity document over IMDSv2
// (the SDK's client: a session token from PUT /latest/api/token, then the
// GET with it; its IMDSv1 fallback is off with
// AWS_EC2_METADATA_V1_DISABLED=true) at every login.
func (au *auth) awsEC2LoginData(ctx context.Context) (map[string]any, error) {
	src := "EC2 instance metadata (" + imdsEndpoint() + ") /latest/dynamic/instance-identity/pkcs7"
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, &cloudError{Source: "aws config (" + awsProfileDesc() + ")", Err: err}
	}
	out, err := imds.NewFromConfig(cfg).GetDynamicData(ctx, &imds.GetDynamicDataInput{Path: "instance-identity/pkcs7"})
	if err != nil {
		// The client's token errors do not unwrap to the network error:
		// whatever is not IMDS's HTTP answer is no answer, and retried.
		var re *smithyhttp.ResponseError
		return nil, &cloudError{Source: src, Err: err, NoAnswer: !errors.As(err, &re)}
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 1<<20))
	if err != nil {
		return nil, &cloudError{Source: src, Err: err}
	}
	// IMDS wraps the base64 at 64 columns; Vault wants one line.
	pkcs7 := strings.Join(strings.Fields(string(b)), "")
	if pkcs7 == "" {
		return nil, &cloudError{Source: src, Err: errors.New("empty answer")}
	}
	nonce, err := au.ec2Nonce.get()
	if err != nil {
		return nil, fmt.Errorf("aws ec2 login nonce: %w", err)
	}
	body := map[string]any{"pkcs7": pkcs7, "nonce": nonce}
	if au.cfg.Role != "" {
		body["role"] = au.cfg.Role // else Vault takes the AMI id
	}
	return body, nil
}
