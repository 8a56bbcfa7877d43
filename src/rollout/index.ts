export * from './decision.ts';
export * from './deploy-target.ts';
export * from './ecs-target.ts';
export * from './errors.ts';
export * from './event.ts';
export * from './follow.ts';
export * from './operations.ts';
export * from './pinned-model.ts';
