/**
 * The CESQL abstract syntax tree. `pos` is the 0-based offset of the token that produced the node
 * (the operator for operations, the name for calls), for diagnostics.
 */

import type { LikeMatcher } from './like.js';
import type { CesqlValue } from './types.js';

export type ArithmeticOperator = '*' | '/' | '%' | '+' | '-';
export type ComparisonOperator = '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=';
export type LogicOperator = 'AND' | 'OR' | 'XOR';
export type BinaryOperator = ArithmeticOperator | ComparisonOperator | LogicOperator;

export type Expr =
  | { readonly kind: 'literal'; readonly pos: number; readonly value: CesqlValue }
  | { readonly kind: 'attribute'; readonly pos: number; readonly name: string }
  | { readonly kind: 'exists'; readonly pos: number; readonly name: string }
  | { readonly kind: 'not'; readonly pos: number; readonly operand: Expr }
  | { readonly kind: 'negate'; readonly pos: number; readonly operand: Expr }
  | {
      readonly kind: 'binary';
      readonly pos: number;
      readonly operator: BinaryOperator;
      readonly left: Expr;
      readonly right: Expr;
    }
  | {
      readonly kind: 'like';
      readonly pos: number;
      readonly operand: Expr;
      readonly negated: boolean;
      readonly pattern: string;
      /** Compiled when the expression is parsed. */
      readonly matcher: LikeMatcher;
    }
  | {
      readonly kind: 'in';
      readonly pos: number;
      readonly operand: Expr;
      readonly negated: boolean;
      readonly set: readonly Expr[];
    }
  | {
      readonly kind: 'call';
      readonly pos: number;
      /** Upper-cased: function names are case-insensitive. */
      readonly name: string;
      readonly args: readonly Expr[];
    };

/** The direct subexpressions of a node. */
export function children(expr: Expr): readonly Expr[] {
  switch (expr.kind) {
    case 'literal':
    case 'attribute':
    case 'exists':
      return [];
    case 'not':
    case 'negate':
    case 'like':
      return [expr.operand];
    case 'binary':
      return [expr.left, expr.right];
    case 'in':
      return [expr.operand, ...expr.set];
    case 'call':
      return expr.args;
  }
}
