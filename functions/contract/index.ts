export * from './env';
export * from './events';
export * from './limits';
export * from './observability';
export * from './routes';
export * from './table';
