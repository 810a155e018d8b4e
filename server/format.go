package server

// responseFilter builds the constrained decoder for response_format.
func (s *Server) responseFilter(rf *responseFormat) (TokenFilter, error) {
	switch rf.Type {
	case "", "text":
		return nil, nil
	}
	return nil, invalid("response_format", "response_format %q is not supported", rf.Type)
}
