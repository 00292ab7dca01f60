package mschap

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 2759 §9.2 hash example.
func TestRFC2759HashExample(t *testing.T) {
	var authC, peerC [16]byte
	copy(authC[:], unhex(t, "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28"))
	copy(peerC[:], unhex(t, "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E"))
	c := ChallengeHash(&peerC, &authC, "User")
	if !bytes.Equal(c[:], unhex(t, "D0 2E 43 86 BC E9 12 26")) {
		t.Errorf("ChallengeHash = %X", c)
	}
	ph := NTPasswordHash("clientPass")
	if !bytes.Equal(ph[:], unhex(t, "44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")) {
		t.Errorf("NTPasswordHash = %X", ph)
	}
	hh := MD4(ph[:])
	if !bytes.Equal(hh[:], unhex(t, "41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")) {
		t.Errorf("PasswordHashHash = %X", hh)
	}
	nt := GenerateNTResponse(&authC, &peerC, "User", "clientPass")
	if !bytes.Equal(nt[:], unhex(t, "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")) {
		t.Errorf("NT-Response = %X", nt)
	}
	if !VerifyNTResponse(&authC, &peerC, "User", "clientPass", nt[:]) {
		t.Error("VerifyNTResponse rejected the RFC vector")
	}
	if VerifyNTResponse(&authC, &peerC, "User", "clientPasS", nt[:]) {
		t.Error("VerifyNTResponse accepted a wrong password")
	}
	// RFC 2759 §8.2: a domain prefix is not part of the hashed name.
	if !VerifyNTResponse(&authC, &peerC, `CORP\User`, "clientPass", nt[:]) {
		t.Error("domain prefix not stripped")
	}
	ar := GenerateAuthenticatorResponse("clientPass", &nt, &peerC, &authC, "User")
	if ar != "S=407A5589115FD0D6209F510FE9C04566932CDA56" {
		t.Errorf("AuthenticatorResponse = %s", ar)
	}
	if !CheckAuthenticatorResponse("clientPass", &nt, &peerC, &authC, "User", strings.ToLower(ar)+" M=welcome") {
		t.Error("CheckAuthenticatorResponse rejected the RFC vector")
	}
	bad := []byte(ar)
	bad[10] ^= 1
	if CheckAuthenticatorResponse("clientPass", &nt, &peerC, &authC, "User", string(bad)) {
		t.Error("CheckAuthenticatorResponse accepted a modified response")
	}
	if CheckAuthenticatorResponse("clientPass", &nt, &peerC, &authC, "User", "S=12") {
		t.Error("CheckAuthenticatorResponse accepted a short response")
	}
}

// RFC 2759 §9.3 DES key generation example.
func TestRFC2759DESKeyExample(t *testing.T) {
	ph := NTPasswordHash("MyPw")
	if !bytes.Equal(ph[:], unhex(t, "FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC")) {
		t.Fatalf("NTPasswordHash(MyPw) = %X", ph)
	}
	k1 := DESKey(ph[0:7])
	if !bytes.Equal(k1[:], unhex(t, "FD 0B 5B 5E 7F 6E 34 D9")) {
		t.Errorf("first key = %X", k1)
	}
	k2 := DESKey(ph[7:14])
	if !bytes.Equal(k2[:], unhex(t, "0E 6E 79 67 37 EA 08 FE")) {
		t.Errorf("second key = %X", k2)
	}
}
