package radiustest

// AllowWithoutMessageAuthenticator lets the 127.0.0.1 client send
// Access-Requests without a Message-Authenticator (RFC 3579 §3.2 makes
// it optional outside EAP), as NASes that predate the BlastRADIUS
// hardening do (l2tpns). Call it before Start.
func (f *FreeRADIUS) AllowWithoutMessageAuthenticator() {
	f.write("clients.conf", "client lo {\n\tipaddr = 127.0.0.1\n\tsecret = "+Secret+"\n\trequire_message_authenticator = no\n\tlimit_proxy_state = no\n}\n")
}
