package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"webrepl/bridge"
	"webrepl/internal/leakcheck"
	"webrepl/protocol"
	"webrepl/transport"
)

const tlsPassword = "a TLS test password"

// servedCert returns the certificate the server at a wss:// address
// presents.
func servedCert(t *testing.T, url string) *x509.Certificate {
	t.Helper()
	hostport, _, _ := strings.Cut(strings.TrimPrefix(url, "wss://"), "/")
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		t.Fatal("the bridge sent no certificate")
	}
	return certs[0]
}

// loginTLS logs in to the bridge at a wss:// address with conf.
func loginTLS(t *testing.T, url string, conf *tls.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, url, &transport.DialOptions{TLSConfig: conf})
	if err != nil {
		t.Fatal(err)
	}
	c, err := protocol.Login(ctx, conn, tlsPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// checkPinnedClient runs a client command against a bridge whose board
// echoes: with the right fingerprint it works; without one, or with
// another, the certificate is refused.
func checkPinnedClient(t *testing.T, url, fingerprint string) {
	t.Helper()
	r := run(t, "over TLS", "repl", "-d", url, "-p", tlsPassword, "--tls-fingerprint", fingerprint)
	if r.err != nil || !strings.Contains(r.stdout, "over TLS") {
		t.Fatalf("repl with --tls-fingerprint: %v, output %q", r.err, r.stdout)
	}
	if r := run(t, "", "repl", "-d", url, "-p", tlsPassword); r.err == nil || !strings.Contains(r.err.Error(), "certificate") {
		t.Fatalf("repl without a fingerprint: %v, want a certificate error", r.err)
	}
	other := "00" + fingerprint[2:]
	if strings.HasPrefix(fingerprint, "00") {
		other = "11" + fingerprint[2:]
	}
	if r := run(t, "", "repl", "-d", url, "-p", tlsPassword, "--tls-fingerprint", other); r.err == nil || !strings.Contains(r.err.Error(), "fingerprint") {
		t.Fatalf("repl with another fingerprint: %v, want a fingerprint mismatch", r.err)
	}
}

func TestBridgeSelfSignedTLS(t *testing.T) {
	leakcheck.Check(t)
	fpLine := regexp.MustCompile(`SHA-256 fingerprint: (\S+)`)
	lines := startBridgeOutput(t, nil, fpLine, "--port", echoPort(t), "--listen", "127.0.0.1:0",
		"--password", tlsPassword, "--tls-self-signed")
	url := bridgeAddr.FindString(strings.Join(lines, "\n"))
	if !strings.HasPrefix(url, "wss://") {
		t.Fatalf("the bridge printed %q, want a wss:// address", lines)
	}
	printed := fpLine.FindStringSubmatch(lines[len(lines)-1])[1]

	leaf := servedCert(t, url)
	sum := sha256.Sum256(leaf.Raw)
	if got := strings.ReplaceAll(printed, ":", ""); !strings.EqualFold(got, hex.EncodeToString(sum[:])) {
		t.Fatalf("printed fingerprint %s, served certificate's SHA-256 %x", printed, sum)
	}
	// The certificate names the listen address, so trusting it is enough.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	loginTLS(t, url, &tls.Config{RootCAs: pool})
	checkPinnedClient(t, url, printed)

	// The environment variable pins too, in any spelling of the hex.
	t.Setenv("WEBREPL_TLS_FINGERPRINT", hex.EncodeToString(sum[:]))
	if r := run(t, "from the environment", "repl", "-d", url, "-p", tlsPassword); r.err != nil || !strings.Contains(r.stdout, "from the environment") {
		t.Fatalf("repl with WEBREPL_TLS_FINGERPRINT: %v, output %q", r.err, r.stdout)
	}
}

func TestBridgeTLSCertFiles(t *testing.T) {
	leakcheck.Check(t)
	cert, _, err := bridge.SelfSignedCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)

	url := startBridgeCmd(t, nil, "--port", echoPort(t), "--listen", "127.0.0.1:0",
		"--password", tlsPassword, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(url, "wss://") {
		t.Fatalf("the bridge printed %q, want a wss:// address", url)
	}
	if leaf := servedCert(t, url); !leaf.Equal(cert.Leaf) {
		t.Fatal("the bridge serves another certificate than the one given")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	loginTLS(t, url, &tls.Config{RootCAs: pool})
	checkPinnedClient(t, url, bridge.Fingerprint(cert.Certificate[0]))
}

func TestParseFingerprint(t *testing.T) {
	sum := sha256.Sum256([]byte("a certificate"))
	plain := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"as the bridge prints it", bridge.Fingerprint([]byte("a certificate")), true},
		{"lower case, no colons", plain, true},
		{"upper case, spaces around", "  " + strings.ToUpper(plain) + "\n", true},
		{"too short", plain[:62], false},
		{"too long", plain + "00", false},
		{"not hex", "zz" + plain[2:], false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFingerprint(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("got %x, want an error", got)
				}
				return
			}
			if err != nil || got != sum {
				t.Fatalf("got %x, %v; want %x", got, err, sum)
			}
		})
	}
}
