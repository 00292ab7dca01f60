package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// Client sends requests to a daemon's admin socket.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
	// Timeout bounds each Do (default 30s).
	Timeout time.Duration
}

// Dial connects to the admin socket at path.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return &Client{conn: c, r: bufio.NewReader(c), Timeout: 30 * time.Second}, nil
}

// Do sends req and returns the data of the answer. An error the daemon
// answered with wraps ErrDaemon.
func (c *Client) Do(req Request) (json.RawMessage, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	timeout := c.Timeout
	if req.Cmd == CmdCapture {
		secs := req.Seconds
		if secs <= 0 {
			secs = defaultCaptureSeconds
		}
		timeout += time.Duration(secs) * time.Second
	}
	c.conn.SetDeadline(time.Now().Add(timeout))
	_, werr := c.conn.Write(append(b, '\n'))
	// Read even when the write failed: a daemon refusing the connection
	// answers and closes before reading the request.
	line, err := c.readLine()
	if err != nil {
		if werr != nil {
			return nil, fmt.Errorf("admin: %w", werr)
		}
		return nil, fmt.Errorf("admin: reading the answer: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("admin: bad answer: %w", err)
	}
	if !resp.OK {
		if resp.Error == "" {
			resp.Error = "request failed"
		}
		return nil, fmt.Errorf("%w: %s", ErrDaemon, resp.Error)
	}
	return resp.Data, nil
}

func (c *Client) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxResponseLine {
			return nil, fmt.Errorf("answer longer than %d bytes", MaxResponseLine)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
