package constrain

// Frame types of the recognizer's stack.
const (
	fValue   uint8 = iota // before a value
	fObject               // inside an object
	fArray                // inside an array
	fString               // inside a string value
	fEnum                 // matching one of an enum's texts
	fNumber               // inside a number
	fLiteral              // inside true, false or null
)

// Object states.
const (
	oStart      uint8 = iota // after '{': a key or '}'
	oKey                     // after ',': a key
	oInKey                   // inside a key
	oColon                   // after a key
	oAfterValue              // after a value: ',' or '}'
)

// Array states.
const (
	aStart      uint8 = iota // after '[': a value or ']'
	aAfterValue              // after a value: ',' or ']'
)

// String states.
const (
	sNormal uint8 = iota
	sEscape
	sHex1 // sHex1..sHex4: that many hex digits still due, counting down
)

// Number states.
const (
	nStart    uint8 = iota // nothing yet
	nMinus                 // after '-'
	nZero                  // after a leading 0 (terminal)
	nInt                   // in integer digits (terminal)
	nDot                   // after '.'
	nFrac                  // in fraction digits (terminal)
	nExp                   // after 'e'
	nExpSign               // after the exponent's sign
	nExpDigit              // in exponent digits (terminal)
)

// anyNode marks frames that accept any JSON (no schema node).
const anyNode = -1

// Limits that keep a constrained generation from running on in one place.
const (
	maxStack  = 64 // nesting
	maxWS     = 16 // consecutive white space
	maxNumLen = 24 // characters of one number
	maxStrLen = 96 // bytes of one free string or key
)

// frame is one level of the recognizer's stack. It holds no pointers, so a
// stack copies with copy().
type frame struct {
	typ   uint8
	state uint8
	node  int32  // schema node, or anyNode
	used  uint64 // object: properties written
	cand  uint64 // key or enum candidates
	n     int32  // bytes matched (key, enum, literal) or number length
	free  bool   // object key: not a declared property
	prop  int32  // object: the property whose value comes next (-1: additional)
	lit   uint8  // literal: 0 true, 1 false, 2 null
	isInt bool   // number: integer only
}

var literals = [3]string{"true", "false", "null"}

// Machine recognizes one JSON document, byte by byte.
type Machine struct {
	s     *Schema
	stack []frame
	ws    int
	done  bool
}

// NewMachine returns a recognizer at the start of a document.
func (s *Schema) NewMachine() *Machine {
	m := &Machine{s: s, stack: make([]frame, 0, 16)}
	m.stack = append(m.stack, frame{typ: fValue, node: 0})
	return m
}

// Done reports whether a complete document has been read.
func (m *Machine) Done() bool { return m.done }

// CopyFrom makes m the same state as o, reusing m's memory.
func (m *Machine) CopyFrom(o *Machine) {
	m.s, m.ws, m.done = o.s, o.ws, o.done
	m.stack = append(m.stack[:0], o.stack...)
}

// Feed reads b and reports whether the document is still valid (a prefix
// of a document the schema accepts). After a false return the machine's
// state is unspecified.
func (m *Machine) Feed(b []byte) bool {
	for _, c := range b {
		if !m.feedByte(c) {
			return false
		}
	}
	return true
}

func isWS(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func (m *Machine) node(i int32) *node {
	if i < 0 || int(i) >= len(m.s.nodes) {
		return nil
	}
	return &m.s.nodes[i]
}

func (m *Machine) whitespace() bool {
	m.ws++
	return m.ws <= maxWS
}

func (m *Machine) push(f frame) bool {
	if len(m.stack) >= maxStack {
		return false
	}
	m.stack = append(m.stack, f)
	return true
}

// pop ends the top frame's value.
func (m *Machine) pop() {
	m.stack = m.stack[:len(m.stack)-1]
	if len(m.stack) == 0 {
		m.done = true
	}
}

func (m *Machine) feedByte(c byte) bool {
	if m.done {
		return false
	}
	if !isWS(c) {
		m.ws = 0
	}
	for {
		if len(m.stack) == 0 {
			return false // a value ended and c follows the document
		}
		top := &m.stack[len(m.stack)-1]
		switch top.typ {
		case fValue:
			if isWS(c) {
				return m.whitespace()
			}
			return m.startValue(top, c)
		case fObject:
			return m.objectByte(top, c)
		case fArray:
			switch {
			case isWS(c):
				return m.whitespace()
			case top.state == aStart && c == ']', top.state == aAfterValue && c == ']':
				m.pop()
				return true
			case top.state == aAfterValue && c == ',':
				return m.push(frame{typ: fValue, node: m.itemsOf(top)})
			case top.state == aStart:
				top.state = aAfterValue
				if !m.push(frame{typ: fValue, node: m.itemsOf(top)}) {
					return false
				}
				continue
			}
			return false
		case fString:
			return m.stringByte(top, c)
		case fEnum:
			n := m.node(top.node)
			var next uint64
			for i, e := range n.enum {
				if top.cand&(1<<i) != 0 && len(e) > int(top.n) && e[top.n] == c {
					next |= 1 << i
				}
			}
			if next != 0 {
				top.cand, top.n = next, top.n+1
				if m.enumComplete(top, n) && !m.enumExtendable(top, n) {
					m.pop()
				}
				return true
			}
			if m.enumComplete(top, n) {
				m.pop()
				continue // c belongs to the enclosing value
			}
			return false
		case fNumber:
			ok, end := numberByte(top, c)
			if ok {
				return true
			}
			if end {
				m.pop()
				continue
			}
			return false
		case fLiteral:
			lit := literals[top.lit]
			if lit[top.n] != c {
				return false
			}
			top.n++
			if int(top.n) == len(lit) {
				m.pop()
			}
			return true
		}
		return false
	}
}

func (m *Machine) itemsOf(f *frame) int32 {
	if n := m.node(f.node); n != nil && n.kind == kArray {
		return int32(n.items)
	}
	return anyNode
}

func (m *Machine) enumComplete(f *frame, n *node) bool {
	for i, e := range n.enum {
		if f.cand&(1<<i) != 0 && len(e) == int(f.n) {
			return true
		}
	}
	return false
}

func (m *Machine) enumExtendable(f *frame, n *node) bool {
	for i, e := range n.enum {
		if f.cand&(1<<i) != 0 && len(e) > int(f.n) {
			return true
		}
	}
	return false
}

// startValue replaces the fValue frame on top with the value c starts.
func (m *Machine) startValue(top *frame, c byte) bool {
	k := kAny
	n := m.node(top.node)
	if n != nil {
		k = n.kind
	}
	if k == kUnion {
		for _, a := range n.alts {
			if m.s.startsWith(a, c) {
				top.node = int32(a)
				return m.startValue(top, c)
			}
		}
		return false
	}
	if k == kEnum {
		*top = frame{typ: fEnum, node: top.node, cand: 1<<len(n.enum) - 1}
		return m.feedByteTop(c)
	}
	switch {
	case c == '{' && (k == kAny || k == kObject):
		*top = frame{typ: fObject, node: top.node, state: oStart}
		if k == kAny {
			top.node = anyNode
		}
		return true
	case c == '[' && (k == kAny || k == kArray):
		*top = frame{typ: fArray, node: top.node, state: aStart}
		if k == kAny {
			top.node = anyNode
		}
		return true
	case c == '"' && (k == kAny || k == kString):
		*top = frame{typ: fString}
		return true
	case (c == '-' || c >= '0' && c <= '9') && (k == kAny || k == kNumber || k == kInteger):
		*top = frame{typ: fNumber, isInt: k == kInteger}
		ok, _ := numberByte(top, c)
		return ok
	case c == 't' && (k == kAny || k == kBoolean):
		*top = frame{typ: fLiteral, lit: 0, n: 1}
		return true
	case c == 'f' && (k == kAny || k == kBoolean):
		*top = frame{typ: fLiteral, lit: 1, n: 1}
		return true
	case c == 'n' && (k == kAny || k == kNull):
		*top = frame{typ: fLiteral, lit: 2, n: 1}
		return true
	}
	return false
}

// feedByteTop feeds c to the (new) top frame.
func (m *Machine) feedByteTop(c byte) bool { return m.feedByte(c) }

// objectByte advances an object frame.
func (m *Machine) objectByte(top *frame, c byte) bool {
	n := m.node(top.node)
	var props []prop
	extra := int32(anyNode) // additional properties' schema; -2 none
	var required uint64
	if n != nil {
		props, required = n.props, n.required
		switch {
		case n.extra == -1:
			extra = -2
		case n.extra >= 0:
			extra = int32(n.extra)
		}
	}
	all := uint64(1)<<len(props) - 1
	switch top.state {
	case oStart, oKey:
		if isWS(c) {
			return m.whitespace()
		}
		if c == '}' && top.state == oStart && top.used&required == required {
			m.pop()
			return true
		}
		if c != '"' {
			return false
		}
		top.state, top.n = oInKey, 0
		top.cand = all &^ top.used
		top.free = extra != -2
		return top.cand != 0 || top.free
	case oInKey:
		if c == '"' {
			for i, p := range props {
				if top.cand&(1<<i) != 0 && len(p.name) == int(top.n) {
					top.used |= 1 << i
					top.prop = int32(i)
					top.state = oColon
					return true
				}
			}
			if !top.free {
				return false
			}
			top.prop, top.state = -1, oColon
			return true
		}
		if c < 0x20 || c == '\\' || top.n >= maxStrLen {
			return false // keys are short and written without escapes
		}
		var next uint64
		for i, p := range props {
			if top.cand&(1<<i) != 0 && len(p.name) > int(top.n) && p.name[top.n] == c {
				next |= 1 << i
			}
		}
		top.cand = next
		top.n++
		return next != 0 || top.free
	case oColon:
		if isWS(c) {
			return m.whitespace()
		}
		if c != ':' {
			return false
		}
		child := extra
		if top.prop >= 0 {
			child = int32(props[top.prop].schema)
		}
		top.state = oAfterValue
		return m.push(frame{typ: fValue, node: child})
	case oAfterValue:
		if isWS(c) {
			return m.whitespace()
		}
		if c == '}' && top.used&required == required {
			m.pop()
			return true
		}
		if c == ',' && (extra != -2 || top.used != all) {
			top.state = oKey
			return true
		}
	}
	return false
}

// stringByte advances a free string.
func (m *Machine) stringByte(top *frame, c byte) bool {
	switch top.state {
	case sNormal:
		top.n++
		switch {
		case c == '"':
			m.pop()
		case top.n > maxStrLen:
			return false
		case c == '\\':
			top.state = sEscape
		case c < 0x20:
			return false
		}
		return true
	case sEscape:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			top.state = sNormal
		case 'u':
			top.state = sHex1 + 3
		default:
			return false
		}
		return true
	default:
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
		if top.state == sHex1 {
			top.state = sNormal
		} else {
			top.state--
		}
		return true
	}
}

// numberByte advances a number: ok when c extends it, end when c cannot
// but the number so far is complete (c then belongs to the parent).
func numberByte(f *frame, c byte) (ok, end bool) {
	digit := c >= '0' && c <= '9'
	terminal := f.state == nZero || f.state == nInt || f.state == nFrac || f.state == nExpDigit
	if f.n >= maxNumLen {
		return false, terminal
	}
	next := f.state
	switch f.state {
	case nStart:
		switch {
		case c == '-':
			next = nMinus
		case c == '0':
			next = nZero
		case digit:
			next = nInt
		}
	case nMinus:
		switch {
		case c == '0':
			next = nZero
		case digit:
			next = nInt
		}
	case nZero, nInt:
		switch {
		case digit && f.state == nInt:
			next = nInt
		case c == '.' && !f.isInt:
			next = nDot
		case (c == 'e' || c == 'E') && !f.isInt:
			next = nExp
		}
	case nDot, nFrac:
		if digit {
			next = nFrac
		} else if (c == 'e' || c == 'E') && f.state == nFrac {
			next = nExp
		}
	case nExp:
		switch {
		case c == '+' || c == '-':
			next = nExpSign
		case digit:
			next = nExpDigit
		}
	case nExpSign, nExpDigit:
		if digit {
			next = nExpDigit
		}
	}
	if next == f.state && !(digit && (f.state == nInt || f.state == nFrac || f.state == nExpDigit)) {
		return false, terminal
	}
	f.state = next
	f.n++
	return true, false
}
