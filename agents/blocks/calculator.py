"""`calculator {expression}`: safe arithmetic, parsed with `ast` and evaluated node by node (no eval).

Only numbers, + - * / // % **, unary + and -, and parentheses are arithmetic; anything else is refused.
Sizes are capped so an expression cannot make the process hang or run out of memory.
"""

import ast
import math
import operator

from agents.blocks import Block, BlockError, register

MAX_EXPRESSION_CHARS = 1_000
MAX_EXPONENT = 1_000
MAX_MAGNITUDE = 10**1_000  # no intermediate value or result may be larger than this in absolute value

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
OTHER_OPERATORS = {ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^",
                   ast.MatMult: "@", ast.Invert: "~", ast.Not: "not"}

# What to call the things that are not arithmetic, in error messages.
NOT_ARITHMETIC = {ast.Name: "the name", ast.Call: "the function call", ast.Attribute: "the attribute access",
                  ast.Subscript: "the subscript", ast.Compare: "the comparison", ast.BoolOp: "the boolean operation",
                  ast.Lambda: "the lambda", ast.IfExp: "the conditional", ast.JoinedStr: "the f-string"}


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def _not_arithmetic(node: ast.AST, source: str) -> BlockError:
    segment = _shown(ast.get_source_segment(source, node) or type(node).__name__)
    if isinstance(node, ast.Constant):
        kind = "the string" if isinstance(node.value, str | bytes) else "the constant"
    else:
        kind = NOT_ARITHMETIC.get(type(node), "the expression")
    return BlockError(f"calculator: {kind} {segment!r} is not arithmetic")


def _checked(value: int | float) -> int | float:
    if isinstance(value, complex):
        raise BlockError("calculator: the result is not a real number")
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_MAGNITUDE:
        raise BlockError("calculator: the result is too large")
    return value


def _power(base: int | float, exponent: int | float) -> int | float:
    if abs(exponent) > MAX_EXPONENT:
        raise BlockError(f"calculator: exponents are limited to -{MAX_EXPONENT}..{MAX_EXPONENT}")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        # A lower bound of the result's size, so a huge power is refused before it is computed.
        if (abs(base).bit_length() - 1) * exponent > MAX_MAGNITUDE.bit_length():
            raise BlockError("calculator: the result is too large")
    return base**exponent


def _evaluate(node: ast.AST, source: str) -> int | float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, source)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _not_arithmetic(node, source)
        return _checked(node.value)  # a literal like 1e999 is inf
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_evaluate(node.operand, source))
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _evaluate(node.left, source), _evaluate(node.right, source)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right))
        return _checked(BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp | ast.BinOp):
        symbol = OTHER_OPERATORS.get(type(node.op), type(node.op).__name__)
        segment = _shown(ast.get_source_segment(source, node) or "")
        raise BlockError(f"calculator: the operator {symbol!r} in {segment!r} is not arithmetic")
    raise _not_arithmetic(node, source)


def calculate(expression: str) -> int | float:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise BlockError(f"calculator: the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    if not expression.strip():
        raise BlockError("calculator: the expression is empty")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise BlockError(f"calculator: cannot parse {_shown(expression)!r}: {getattr(exc, 'msg', exc)}") from None
    except RecursionError:
        raise BlockError("calculator: the expression is nested too deeply") from None
    try:
        return _evaluate(tree, expression.strip())
    except ZeroDivisionError:
        raise BlockError("calculator: division by zero") from None
    except OverflowError:
        raise BlockError("calculator: the result is too large") from None
    except RecursionError:
        raise BlockError("calculator: the expression is nested too deeply") from None


async def run(block_input: dict) -> dict:
    expression = block_input.get("expression")
    if not isinstance(expression, str):
        raise BlockError("calculator: expression must be a string, like \"(2 + 3) * 4\"")
    return {"result": calculate(expression)}


register(Block(
    name="calculator",
    description="Evaluate an arithmetic expression: numbers, + - * / // % **, unary +/- and parentheses.",
    input_schema={"type": "object",
                  "properties": {"expression": {"type": "string", "maxLength": MAX_EXPRESSION_CHARS,
                                                "description": "arithmetic, like (2 + 3) * 4"}},
                  "required": ["expression"]},
    output_schema={"type": "object", "properties": {"result": {"type": "number"}}},
    run=run,
))
