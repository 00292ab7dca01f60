package ppp

import (
	"crypto/md5"
	"crypto/subtle"

	"github.com/l2tpd/l2tpd/ppp/mschap"
)

// LocalUsers is an Authenticator over a fixed user → password map, the
// embedded default when no RADIUS server is configured.
type LocalUsers map[string]string

// Authenticate verifies PAP, CHAP-MD5 (RFC 1994 §4.1) and MS-CHAPv2
// (RFC 2759 §8) credentials against the stored password.
func (u LocalUsers) Authenticate(req *AuthRequest) AuthResult {
	pw, ok := u[req.User]
	if !ok {
		return AuthResult{Message: "authentication failed"}
	}
	switch req.Protocol {
	case AuthPAP:
		if subtle.ConstantTimeCompare([]byte(pw), req.Password) == 1 {
			return AuthResult{Accept: true, Message: "welcome"}
		}
	case AuthCHAPMD5:
		h := md5.New()
		h.Write([]byte{req.ID})
		h.Write([]byte(pw))
		h.Write(req.Challenge)
		if subtle.ConstantTimeCompare(h.Sum(nil), req.Response) == 1 {
			return AuthResult{Accept: true, Message: "welcome"}
		}
	case AuthMSCHAPv2:
		if len(req.Challenge) != mschap.ChallengeSize {
			break
		}
		ac := [16]byte(req.Challenge)
		if mschap.VerifyNTResponse(&ac, &req.PeerChallenge, req.User, pw, req.NTResponse[:]) {
			return AuthResult{
				Accept:                true,
				Message:               "welcome",
				AuthenticatorResponse: mschap.GenerateAuthenticatorResponse(pw, &req.NTResponse, &req.PeerChallenge, &ac, req.User),
			}
		}
	}
	return AuthResult{Message: "authentication failed"}
}
