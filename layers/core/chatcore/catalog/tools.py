"""Tools the agents call. They run offline: no network, no secrets."""

from __future__ import annotations

import ast
import math
import operator
from decimal import Context, Decimal, DecimalException, localcontext

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": lambda x: x.sqrt(), "abs": abs, "round": lambda x, n=Decimal(0): round(x, int(n))}
_MAX_EXPONENT = 1000


class CalculatorError(ValueError):
    """The expression is not arithmetic the calculator accepts."""


def _evaluate(node: ast.AST, source: str) -> Decimal:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, source)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        if isinstance(node.value, int):
            return Decimal(node.value)
        # a float literal is read from its text: Python's float would round 1.00000000000000000001 to 1.0
        return Decimal(ast.get_source_segment(source, node))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, source), _evaluate(node.right, source)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise CalculatorError("exponent too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, source))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords):
        return Decimal(_FUNCTIONS[node.func.id](*[_evaluate(a, source) for a in node.args]))
    if isinstance(node, ast.Name) and node.id in ("pi", "e"):
        return Decimal(str(getattr(math, node.id)))
    raise CalculatorError(f"unsupported element: {ast.dump(node)[:60]}")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly (decimal arithmetic).

    Supports + - * / // % ** (or ^), parentheses, sqrt(x), abs(x), round(x, n), pi and e.

    Args:
        expression: The expression to evaluate, for example "(1250 * 0.15) + 99.99".

    Returns:
        The result as a decimal string.
    """
    if len(expression) > 500:
        raise CalculatorError("expression too long (500 characters at most)")
    source = expression.replace("^", "**").replace("×", "*").replace("÷", "/")
    # a local context: the caller's thread keeps its own decimal precision
    with localcontext(Context(prec=34)):
        try:
            result = _evaluate(ast.parse(source, mode="eval"), source)
        except (SyntaxError, DecimalException, ZeroDivisionError, TypeError) as e:
            raise CalculatorError(f"cannot evaluate {expression!r}: {e.__class__.__name__}") from e
        # (10**999)**999 is a million digits: refuse results that cannot be written out sensibly
        if not result.is_finite() or (result and abs(result.adjusted()) > _MAX_EXPONENT):
            raise CalculatorError(f"the result of {expression!r} is out of range")
        text = format(result.normalize(), "f") if result == result.to_integral() else format(result, "f")
    return text


_LENGTH = {"mm": Decimal("0.001"), "cm": Decimal("0.01"), "m": Decimal(1), "km": Decimal(1000),
           "in": Decimal("0.0254"), "ft": Decimal("0.3048"), "yd": Decimal("0.9144"), "mi": Decimal("1609.344")}
_MASS = {"g": Decimal("0.001"), "kg": Decimal(1), "t": Decimal(1000), "oz": Decimal("0.028349523125"),
         "lb": Decimal("0.45359237")}
_VOLUME = {"ml": Decimal("0.001"), "l": Decimal(1), "cup": Decimal("0.25"), "gal": Decimal("3.785411784")}


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of length, mass, volume or temperature.

    Args:
        value: The quantity to convert.
        from_unit: One of mm, cm, m, km, in, ft, yd, mi, g, kg, t, oz, lb, ml, l, cup, gal, C, F, K.
        to_unit: The unit to convert to, of the same kind.

    Returns:
        The converted quantity with its unit.
    """
    try:
        amount = Decimal(str(value))
    except DecimalException as e:
        raise ValueError(f"{value!r} is not a number") from e
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    f, t = from_unit.strip(), to_unit.strip()
    temps = {"C", "F", "K"}
    try:
        if f.upper() in temps and t.upper() in temps:
            f, t = f.upper(), t.upper()
            celsius = {"C": amount, "F": (amount - 32) * 5 / 9, "K": amount - Decimal("273.15")}[f]
            out = {"C": celsius, "F": celsius * 9 / 5 + 32, "K": celsius + Decimal("273.15")}[t]
            return f"{out.quantize(Decimal('0.01'))} {t}"
        for table in (_LENGTH, _MASS, _VOLUME):
            if f.lower() in table and t.lower() in table:
                out = amount * table[f.lower()] / table[t.lower()]
                # 4 decimals, but at least 4 significant digits: 1 g is 0.000001 t, not 0 t
                places = max(4, 3 - out.adjusted()) if out else 4
                return f"{out.quantize(Decimal(1).scaleb(-places)).normalize():f} {t.lower()}"
    except DecimalException as e:  # a result too large to write with that many decimals
        raise ValueError(f"{value!r} {from_unit} is out of range for a conversion to {to_unit}") from e
    raise ValueError(f"cannot convert {from_unit!r} to {to_unit!r}")
